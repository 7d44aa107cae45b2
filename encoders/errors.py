"""Errors whose message is meant for the person who sent the input."""


class InputError(ValueError):
    """The input a person sent cannot be used; the message says why, in plain words."""
