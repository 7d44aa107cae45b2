"""Training and evaluating the adapter: frozen encoders and LM, only the projectors learn.

Encoder features and teacher answers are computed once and cached on disk; training
checkpoints and resumes; evaluation runs on data never used in training.
"""
