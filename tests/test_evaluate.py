"""`lunettes eval`'s measures on the tiny model: readers, answered as typed, reading word error."""

import torch

from fusion.speech_reading import greedy_reading
from fusion.training.evaluate import (
    READERS,
    SpokenClip,
    evaluate_speech,
    whisper_reader,
)
from fusion.training.named_images import names_it
from fusion.training.report import EvalResults, metrics, table


def clips(model, texts, transcripts):
    generator = torch.Generator().manual_seed(0)
    return [
        SpokenClip(text, torch.randn(1, 24, model.audio.dim, generator=generator), heard, "en")
        for text, heard in zip(texts, transcripts)
    ]


def test_a_clip_read_as_the_typed_words_is_answered_as_typed(model):
    texts = ["hello there", "a b c"]
    scores = evaluate_speech(model, clips(model, texts, texts), whisper_reader, {})
    assert scores.answered_as_typed == 1.0 and scores.reading_wer == 0.0 and scores.clips == 2


def test_a_misheard_clip_counts_its_word_errors(model):
    scores = evaluate_speech(
        model, clips(model, ["hello there friend"], ["hello where"]), whisper_reader, {}
    )
    assert abs(scores.reading_wer - 2 / 3) < 1e-9  # one substitution, one deletion


def test_every_reader_runs_and_scores_in_range(model):
    for reader in READERS.values():
        scores = evaluate_speech(model, clips(model, ["hi you"], ["hi you"]), reader, {})
        assert 0.0 <= scores.answered_as_typed <= 1.0 and scores.reading_wer >= 0.0


def test_greedy_reading_merges_repeats_and_drops_blanks():
    frames = [0, 3, 3, 0, 3, 5, 5, 0]  # blank, tok2, tok2, blank, tok2, tok4, tok4, blank
    log_probs = torch.full((len(frames), 6), -10.0)
    log_probs[torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    assert greedy_reading(log_probs) == [2, 2, 4]  # class v + 1 is the LM's token v


def test_names_are_whole_words():
    assert names_it("This is a cat.", ("cat",)) and names_it("Two dogs", ("dog",))
    assert not names_it("A cathedral", ("cat",))
    assert names_it("It is a fire engine.", ("fire engine",))


def test_saved_figures_come_from_the_natural_and_human_named_rows():
    from fusion.training.evaluate import SpeechScores
    from fusion.training.report import NEURAL_SET, SHIPPED, WHISPER

    speech = {
        (SHIPPED, NEURAL_SET): SpeechScores(0.9, 0.03, 100),
        (WHISPER, NEURAL_SET): SpeechScores(0.88, 0.035, 100),
        (SHIPPED, "template questions"): SpeechScores(0.8, 0.05, 242),
        (WHISPER, "template questions"): SpeechScores(0.4, 0.2, 242),
    }
    results = EvalResults(speech, 0.05, 0.61, 0.3, 105, 0.8, 200, 0.92, 0.95, 120, 0.83, 36)
    saved = metrics(results)
    assert saved["spoken_answered_as_typed"] == 0.9 and saved["whisper_transcript_wer"] == 0.035
    assert saved["named_images"] == 0.61 and saved["label_named_images"] == 0.3
    assert saved["template_questions_answered_as_typed"] == 0.8 and saved["signs_read"] == 0.92
    printed = table(results, "notes")
    assert "90.0% /  3.0%" in printed and "61.0%" in printed and "92.0%" in printed
    assert saved["colours_said"] == 0.83 and "colours (36 emoji" in printed and "83.0%" in printed


def test_the_colour_set_is_emoji_whose_unicode_names_say_their_colour():
    from fusion.training import named_images

    images = named_images.colour_named_images()
    assert len(images) >= 30
    assert {"🍎": ("red",), "🍏": ("green",), "🟦": ("blue",)}.items() <= {
        i.emoji: i.names for i in images
    }.items()
    assert all(len(i.names) >= 1 and i.image.size == (224, 224) for i in images)
