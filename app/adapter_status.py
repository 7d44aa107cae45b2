"""How a trained adapter's held-out figures are told to a person (CLI and web app)."""


def adapter_figures(metrics: dict) -> str:
    """The held-out evaluation figures of a trained adapter, in words."""
    if not metrics:
        return "not evaluated yet"
    return (
        f"on held-out voices and photos: spoken questions answered as typed "
        f"{metrics['answer_agreement']:.1%}, repeat word error {metrics['repeat_wer']:.1%}, "
        f"photos named {metrics['vision_naming']:.1%}"
    )
