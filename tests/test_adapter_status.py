"""What a person is told about the adapter: trained with its held-out figures, or not."""

from app.adapter_status import adapter_figures
from app.web_format import header_markdown

DESCRIBED = {"language_model": "lm", "vision_encoder": "v", "audio_encoder": "a"}


def test_trained_adapter_figures_are_shown_in_words():
    metrics = {"answer_agreement": 0.8125, "repeat_wer": 0.061, "vision_naming": 0.655}
    text = adapter_figures(metrics)
    assert "answered as typed 81.2%" in text and "word error 6.1%" in text and "named 65.5%" in text
    header = header_markdown(DESCRIBED | {"adapter": {"trained": True, "metrics": metrics}})
    assert "**Adapter: trained**" in header and "81.2%" in header


def test_unevaluated_and_untrained_adapters_say_so():
    assert adapter_figures({}) == "not evaluated yet"
    header = header_markdown(DESCRIBED | {"adapter": {"trained": False, "metrics": {}}})
    assert "not trained yet" in header
