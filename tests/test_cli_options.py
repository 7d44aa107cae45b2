"""`lunettes ask` hands every generation flag to generation, and checks it before loading."""

from app.cli import EXIT_BAD_INPUT, main


def test_repetition_penalty_reaches_the_generation_options(capsys):
    # checked by GenerationOptions, before the model loads: so the flag must reach them
    assert main(["ask", "--repetition-penalty", "3", "Hello"]) == EXIT_BAD_INPUT
    assert "repetition_penalty must be in [1, 2], got 3.0" in capsys.readouterr().err
