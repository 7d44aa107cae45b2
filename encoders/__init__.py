"""Frozen encoders: raw input (PIL image, waveform) -> feature tokens [B, T, D].

This package imports no other project code: `fusion/` builds on it, never the reverse.
"""
