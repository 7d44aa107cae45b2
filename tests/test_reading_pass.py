"""A clip's readings scored after what stands before it in its answer's prompt, and the chosen
reading's keys and values kept for the answer's prefill (fusion/reading_pass.py)."""

from dataclasses import replace

import pytest
import torch

from fusion.adapter import Adapter
from fusion.conversation import Message, user
from fusion.generate import GenerationOptions
from fusion.model import Chunk, LunettesModel
from fusion.prefill import advance, start_prefill
from fusion.prompt_layout import PromptLayout, continued_positions, extended_attention
from fusion.reading_pass import ReadingPass
from fusion.speech_reading import spoken_form
from tests import tiny
from tests.tiny import tone


@pytest.fixture(params=[False, True], ids=["plain", "cued"])
def reading_model(request, model, tokenizer, lm, clip_encoder, audio_encoder):
    """The tiny model, and the same with an adapter whose clips have scoped cues (random
    ones, so that a wrong attention to them shows)."""
    if not request.param:
        return model
    config = replace(tiny.adapter_config(clip_encoder, audio_encoder), audio_cues=True)
    adapter = Adapter.untrained(config, tiny.identities(clip_encoder, audio_encoder, lm), seed=0)
    with torch.no_grad():
        adapter.audio_cues.copy_(
            torch.randn(adapter.audio_cues.shape, generator=torch.Generator().manual_seed(1))
        )
    return LunettesModel(lm, tokenizer, clip_encoder, audio_encoder, adapter, lm_name="tiny-llama")


def _conversation(model: LunettesModel) -> list[Message]:
    """An earlier spoken turn and its answer, then a photo with a new clip: the new clip's
    context holds a photo, and (cued) an earlier clip's scoped cues."""
    earlier = user("and this?", speech=tone(0.6, 300.0))
    messages = [
        earlier,
        Message("assistant", "It is a tone."),
        user("say it", photos=[tiny.photo()], speech=tone(0.8, 500.0)),
    ]
    model.encode_media(messages)
    messages[-1].speech.reading = None
    return messages


def _words(model, texts: list[str]) -> list[list[int]]:
    return [model.tokenizer.encode(text, add_special_tokens=False) for text in texts]


def _left_to_right(model, context, row: list[int]) -> float:
    """The LM's log-probability of `row` after the context, run in one plain pass: the
    context, then the row's tokens seeing what the context's last token sees."""
    vocabulary = model.lm.get_input_embeddings().weight
    layout = context.layout or PromptLayout(
        torch.arange(context.length), torch.ones(context.length, context.length).tril().bool()
    )
    total = context.length + len(row)
    embeddings = torch.cat([context.embeddings[0], vocabulary[row]])[None]  # 1, L, D
    with torch.inference_mode():
        logits = model.lm(
            inputs_embeds=embeddings,
            attention_mask=extended_attention(layout, total)[None, None],
            position_ids=continued_positions(layout, total)[None],
        ).logits[0]
    log_probs = logits.float().log_softmax(-1)  # L, V
    return sum(float(log_probs[context.length - 1 + i, token]) for i, token in enumerate(row))


def test_each_reading_scores_as_the_lm_reads_it_after_the_context(reading_model):
    model = reading_model
    messages = _conversation(model)
    speech = messages[-1].speech
    context = model.reading_context(messages, speech, "me")
    rows = _words(model, ["a b c", "a b d e", "a f", "g", "", "a b c"])
    vocabulary = model.lm.get_input_embeddings().weight
    scores = ReadingPass(model.lm, context, vocabulary, model.prefixes).scores(rows)
    expected = [_left_to_right(model, context, row) if row else 0.0 for row in rows]
    assert scores == pytest.approx(expected, abs=1e-4)
    assert scores[4] == 0.0 and scores[0] == scores[5]


def test_the_context_is_the_answers_prompt_up_to_the_clip(reading_model):
    model = reading_model
    messages = _conversation(model)
    speech = messages[-1].speech
    context = model.reading_context(messages, speech, "me")
    speech.reading = _words(model, ["a b"])[0]
    prompt = model.build_inputs(messages)
    assert torch.equal(prompt.embeddings[:, : context.length], context.embeddings)
    if context.layout is not None:
        head = slice(0, context.length)
        assert torch.equal(prompt.layout.positions[head], context.layout.positions)
        assert torch.equal(prompt.layout.attention[head, head], context.layout.attention)
    assert prompt.prompt_tokens["image"] > 0  # the photo stands before the clip


def test_the_kept_reading_is_the_answers_prefill_up_to_its_last_word(reading_model):
    """The answer to the chosen reading starts after it, for its owner only, and its first
    token's logits are those of the whole prompt prefilled at once."""
    model = reading_model
    messages = _conversation(model)
    speech = messages[-1].speech
    context = model.reading_context(messages, speech, "me")
    vocabulary = model.lm.get_input_embeddings().weight
    rows = _words(model, ["a b c", "a b d e", "g"])
    scoring = ReadingPass(model.lm, context, vocabulary, model.prefixes)
    scoring.scores(rows)
    assert scoring.keep(rows[1])
    assert not scoring.keep(_words(model, ["h"])[0])  # a row it did not score
    speech.reading = rows[1]
    prompt = model.build_inputs(messages)
    cued = model.adapter.audio_cues is not None
    length = prompt.embeddings.shape[1]
    reused = context.length + cued + len(rows[1]) - 1  # the last word is prefilled with the rest
    assert model.prefixes.find(prompt.embeddings[0], prompt.layout, "me")[0] == reused < length
    assert model.prefixes.find(prompt.embeddings[0], prompt.layout, "someone else")[0] < reused
    kept = start_prefill(prompt.embeddings, prompt.layout, model.prefixes, "me")
    fresh = start_prefill(prompt.embeddings, prompt.layout, None)
    kept_logits, fresh_logits = advance(model.lm, kept), advance(model.lm, fresh)
    torch.testing.assert_close(kept_logits, fresh_logits, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(kept.cache.layers, fresh.cache.layers):  # the keys carry positions
        torch.testing.assert_close(ours.keys, theirs.keys, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.values, theirs.values, rtol=1e-4, atol=1e-5)


def test_a_pass_starts_from_the_owners_kept_prompt(model, monkeypatch):
    """A context kept before (the photo's prompt, prefilled while the question was spoken)
    is not run again; the scores are the same."""
    messages = _conversation(model)
    speech = messages[-1].speech
    context = model.reading_context(messages, speech, "me")
    vocabulary = model.lm.get_input_embeddings().weight
    rows = _words(model, ["a b c", "a d"])
    alone = ReadingPass(model.lm, context, vocabulary, None).scores(rows)
    prefill = start_prefill(context.embeddings, context.layout, model.prefixes, "me")
    advance(model.lm, prefill, None, model.prefixes)  # kept whole, with its logits
    found = []
    find = model.prefixes.find

    def finding(*args):
        result = find(*args)
        found.append(result[0])
        return result

    monkeypatch.setattr(model.prefixes, "find", finding)
    kept = ReadingPass(model.lm, context, vocabulary, model.prefixes).scores(rows)
    assert found == [context.length]
    assert kept == pytest.approx(alone, abs=1e-4)
    words = _words(model, ["a", "g"])  # one token each: nothing left to run, the kept logits
    assert all(len(row) == 1 for row in words)
    assert ReadingPass(model.lm, context, vocabulary, model.prefixes).scores(
        words
    ) == pytest.approx(ReadingPass(model.lm, context, vocabulary, None).scores(words), abs=1e-4)


def test_the_model_scores_readings_in_context_and_its_answer_reuses_the_pass(model):
    messages = _conversation(model)
    speech = messages[-1].speech
    speech.heard, speech.heard_scores = ("what is this", "what is that"), ()  # two to judge
    model.encode_media(messages, owner="me")
    reading = speech.reading
    assert reading in _words(model, [spoken_form(text) for text in speech.heard])
    context = model.reading_context(messages, speech, "me")
    prompt = model.build_inputs(messages)
    reused = model.prefixes.find(prompt.embeddings[0], prompt.layout, "me")[0]
    assert reused == context.length + len(reading) - 1


def test_no_lm_pass_when_whisper_is_sure_and_the_answer_reads_the_clip_itself(model, monkeypatch):
    messages = _conversation(model)
    speech = messages[-1].speech
    speech.heard, speech.heard_scores = ("what is this", "what is that"), ()  # no beam scores
    far_apart = [0.0, -model.speech_reading.lm_within - 1.0]
    monkeypatch.setattr(model.transcriber, "score", lambda features, texts, language: far_apart)
    passes = []
    monkeypatch.setattr(ReadingPass, "scores", lambda self, rows: passes.append(rows))
    model.encode_media(messages, owner="me")
    assert passes == [] and speech.reading == _words(model, ["What is this"])[0]
    prompt = model.build_inputs(messages)
    reused = model.prefixes.find(prompt.embeddings[0], prompt.layout, "me")[0]
    assert reused <= model.reading_context(messages, speech, "me").length  # no reading kept
    first = advance(model.lm, start_prefill(prompt.embeddings, prompt.layout, None))  # [V]
    one = GenerationOptions(max_new_tokens=1)
    answer = "".join(e.text for e in model.stream(messages, one, "me") if isinstance(e, Chunk))
    assert answer == model.tokenizer.decode([int(first.argmax())])


def test_a_clip_alone_is_read_after_the_system_prompt(model, monkeypatch):
    """With no context given (lunettes eval's shipped reader), a clip is read as a question
    asked alone: after the system prompt and the user turn's opening."""
    messages = [user(speech=tone(0.8, 500.0))]
    model.encode_media(messages)
    speech = messages[0].speech
    speech.reading, speech.heard = None, ("what is this", "what is that")
    speech.heard_scores = ()  # not the transcript's: these readings are the test's
    seen = []
    scores = ReadingPass.scores
    monkeypatch.setattr(
        ReadingPass, "scores", lambda self, rows: seen.append(self.context) or scores(self, rows)
    )
    model.read_speech(speech, model.lm.get_input_embeddings().weight)
    alone = model.reading_context(messages, speech)
    assert len(seen) == 1 and torch.equal(seen[0].embeddings, alone.embeddings)
    system = model.tokenizer.apply_chat_template(
        [{"role": "system", "content": model.system_prompt}, {"role": "user", "content": "\x00"}],
        tokenize=False,
    ).split("\x00")[0]
    assert alone.length == len(model.tokenizer.encode(system, add_special_tokens=False))
