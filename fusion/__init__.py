"""Fusion: projected encoder features spliced into a causal LM's input embeddings.

Depends on `encoders/`; knows nothing of gradio or the command line (`app/`).
"""
