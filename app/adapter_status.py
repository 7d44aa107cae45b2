"""How a trained adapter's held-out figures are told to a person (CLI, web app, README).

The figures are the natural ones that `lunettes eval` saves with the adapter: everyday
questions written by people and said by a neural voice never trained on, drawings graded
against the names people give them, and signs.
"""


def adapter_figures(metrics: dict) -> str:
    """The held-out evaluation figures of a trained adapter, in words."""
    if "spoken_answered_as_typed" not in metrics:
        return "not evaluated on natural held-out data yet"
    return (
        f"on held-out natural data: spoken questions (a neural voice) answered as typed "
        f"{metrics['spoken_answered_as_typed']:.1%}, word error of what the language model read "
        f"{metrics['spoken_reading_wer']:.1%} (Whisper's transcript alone "
        f"{metrics['whisper_transcript_wer']:.1%}); drawings named as people name them "
        f"{metrics['named_images']:.1%} (the vision tower's own label "
        f"{metrics['label_named_images']:.1%}); signs read word for word {metrics['signs_read']:.1%}"
    )
