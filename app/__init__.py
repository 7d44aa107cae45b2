"""Surfaces of Lunettes: the command line and the web app. Builds on `fusion/`."""
