"""Adapter training on tiny random models: tasks, loss, checkpoint and resume, metrics."""

import json
import random

import pytest
import torch

from fusion.adapter import Adapter
from fusion.training.evaluate import edit_distance, mentions, normalise_words
from fusion.training.speech_data import SpeechExample
from fusion.training.tasks import speech_task, vision_task
from fusion.training.train import STATE_FILE, TrainConfig, batch_loss, train
from fusion.training.vision_data import VisionExample


@pytest.fixture
def fresh_model(model):
    """The tiny model with its own untrained adapter, so training here changes nothing shared."""
    original = model.adapter
    model.adapter = Adapter.untrained(original.config, original.info.identities, seed=1)
    yield model
    model.adapter = original


def examples(model, count=4):
    generator = torch.Generator().manual_seed(0)
    speech = [
        SpeechExample(
            torch.randn(20 + i, model.audio.dim, generator=generator).half(),
            f"say {i}",
            [5, 6, 7],
            "v",
        )
        for i in range(count)
    ]
    vision = [
        VisionExample(
            torch.randn(model.vision.num_tokens, model.vision.dim, generator=generator).half(),
            [i, 1, 2, 3, 4],
            "red",
            "s",
        )
        for i in range(count)
    ]
    return speech, vision


def test_tasks_build_conversations_with_their_media(model):
    speech, vision = examples(model)
    encode = lambda text: model.tokenizer.encode(text, add_special_tokens=False)
    rng = random.Random(0)
    kinds = set()
    for _ in range(20):
        messages, target = speech_task(speech[0], rng, encode)
        assert messages[-1].speech is not None and target
        kinds.add(bool(messages[-1].text))
        messages, target = vision_task(vision[0], rng, encode)
        assert any(m.photos for m in messages) and target
    assert kinds == {True, False}  # both "answer" (speech alone) and "repeat" (with the prompt)


def test_loss_reaches_only_the_adapter_and_falls_on_a_fixed_batch(fresh_model):
    model = fresh_model
    speech, vision = examples(model)
    eos = model.tokenizer.eos_token_id
    rng = random.Random(0)
    encode = lambda text: model.tokenizer.encode(text, add_special_tokens=False)
    batch = [
        (m, t + [eos])
        for m, t in (speech_task(speech[0], rng, encode), vision_task(vision[0], rng, encode))
    ]
    model.adapter.train().requires_grad_(True)
    optimizer = torch.optim.Adam(model.adapter.parameters(), lr=1e-2)
    first = batch_loss(model, batch, "cpu")
    for _ in range(15):
        optimizer.zero_grad()
        loss = batch_loss(model, batch, "cpu")
        loss.backward()
        optimizer.step()
    assert all(p.grad is None for p in model.lm.parameters())
    assert (
        batch_loss(model, batch, "cpu").item() < first.item() - 0.01
    )  # a random tiny LM is near uniform


def test_training_checkpoints_and_resumes(fresh_model, tmp_path):
    model = fresh_model
    speech, vision = examples(model)
    before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    config = TrainConfig(align_steps=2, steps=3, batch_size=2, checkpoint_every=2, warmup_steps=1)
    train(model, speech, vision, config, tmp_path)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["step"] == 3
    assert any(not torch.equal(before[k], v) for k, v in model.adapter.state_dict().items())
    after_three = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    # a new run to 5 steps starts from the checkpoint (step 3), not from scratch
    model.adapter = Adapter.untrained(model.adapter.config, model.adapter.info.identities, seed=2)
    train(
        model,
        speech,
        vision,
        TrainConfig(align_steps=2, steps=5, batch_size=2, warmup_steps=1),
        tmp_path,
    )
    assert json.loads((tmp_path / STATE_FILE).read_text())["step"] == 5
    resumed = Adapter.load(tmp_path, model.adapter.info.identities)
    assert any(not torch.equal(after_three[k], v) for k, v in resumed.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_training_runs_on_cuda_in_bfloat16_and_leaves_the_model_where_it_was(fresh_model, tmp_path):
    model = fresh_model
    speech, vision = examples(model)
    before = {k: v.clone() for k, v in model.adapter.state_dict().items()}
    seen = []
    hook = model.lm.model.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(
            (output.last_hidden_state.device.type, torch.is_autocast_enabled("cuda"))
        ),
        with_kwargs=True,
    )
    try:
        config = TrainConfig(align_steps=2, steps=3, batch_size=2, warmup_steps=1)
        train(model, speech, vision, config, tmp_path, device="cuda")
    finally:
        hook.remove()
    assert seen and set(seen) == {("cuda", True)}
    assert {p.device.type for p in model.lm.parameters()} == {"cpu"}
    assert {p.device.type for p in model.adapter.parameters()} == {"cpu"}
    assert json.loads((tmp_path / STATE_FILE).read_text())["step"] == 3
    after = model.adapter.state_dict()
    assert any(not torch.equal(before[k], v) for k, v in after.items())
    saved = Adapter.load(tmp_path, model.adapter.info.identities).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in after.items())


def test_training_reads_clips_through_the_projector_and_restores_reading(
    fresh_model, tmp_path, monkeypatch
):
    """Training reads clips by the adapter's own CTC head, never by Whisper's readings (the
    tasks must see the adapter's reading); the model reads speech as before afterwards."""
    model = fresh_model
    speech, _ = examples(model)

    def no_rescoring(*args, **kwargs):
        raise AssertionError("training asked Whisper to rescore a reading")

    monkeypatch.setattr(model.transcriber, "score", no_rescoring)
    reading = model.speech_reading
    train(model, speech, [], TrainConfig(align_steps=1, steps=2, batch_size=2), tmp_path)
    assert model.speech_reading is reading and reading is not None


def test_resume_refuses_a_checkpoint_of_other_models(fresh_model, tmp_path):
    from fusion.adapter import AdapterMismatchError

    model = fresh_model
    speech, vision = examples(model)
    train(
        model,
        speech,
        vision,
        TrainConfig(align_steps=2, steps=1, batch_size=2, warmup_steps=1),
        tmp_path,
    )
    identities = {**model.adapter.info.identities, "lm": {"name": "other", "fingerprint": "0" * 16}}
    model.adapter = Adapter.untrained(model.adapter.config, identities)
    with pytest.raises(AdapterMismatchError):
        train(model, speech, vision, TrainConfig(align_steps=2, steps=2, batch_size=2), tmp_path)


def test_metric_helpers():
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert edit_distance([], ["a"]) == 1
    assert normalise_words("What's THIS, please?") == ["what's", "this", "please"]
    assert mentions("This is a tabby cat.", "tabby cat")
    assert not mentions("This is a cathedral.", "cat")


def test_cue_stage_resumes_an_older_checkpoint_and_trains_only_the_cues(fresh_model, tmp_path):
    import dataclasses

    model = fresh_model
    speech, vision = examples(model)
    train(
        model,
        speech,
        vision,
        TrainConfig(align_steps=2, steps=1, batch_size=2, warmup_steps=1),
        tmp_path,
    )
    older = Adapter.load(tmp_path, model.adapter.info.identities)  # saved without cues
    config = dataclasses.replace(model.adapter.config, audio_cues=True, audio_snap=0.0)
    model.adapter = Adapter.untrained(config, model.adapter.info.identities, seed=5)
    train(
        model,
        speech,
        vision,
        TrainConfig(
            align_steps=2,
            steps=1,
            batch_size=2,
            warmup_steps=1,
            cue_steps=3,
            checkpoint_every=2,
        ),
        tmp_path,
    )
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["step"] == 1 and state["cue_step"] == 3
    trained = model.adapter.state_dict()
    for name, value in older.state_dict().items():  # everything else resumed, unchanged
        torch.testing.assert_close(trained[name], value)
    average = model.lm.get_input_embeddings().weight.mean(0)
    assert not torch.allclose(trained["audio_cues"][0], average)  # started there, learned
    assert Adapter.load(tmp_path, model.adapter.info.identities).config.audio_cues


def test_only_text_typed_with_a_clip_trains_its_cues(model):
    """Scoped cues: a clip alone sends them no gradient; "repeat" and a follow-up do."""
    import dataclasses

    from fusion.conversation import Message
    from fusion.training.tasks import FOLLOW_UPS, REPEAT_PROMPT, speech_media
    from fusion.training.train import cue_loss

    saved = model.adapter
    config = dataclasses.replace(saved.config, audio_cues=True, audio_snap=0.0)
    model.adapter = Adapter.untrained(config, saved.info.identities, seed=7)
    try:
        cues = model.adapter.audio_cues.requires_grad_(True)
        clip = examples(model)[0][0]

        def cue_gradient(messages) -> float:
            cues.grad = None
            batch_loss(model, [(messages, [5, 6, model.tokenizer.eos_token_id])], "cpu").backward()
            return 0.0 if cues.grad is None else float(cues.grad.abs().sum())

        assert cue_gradient([Message("user", speech=speech_media(clip))]) == 0.0
        assert cue_gradient([Message("user", REPEAT_PROMPT, speech=speech_media(clip))]) > 0
        assert cue_gradient([Message("user", FOLLOW_UPS[0], speech=speech_media(clip))]) > 0
        rng = random.Random(0)
        for share in (0.0, 1.0):  # repeats only, follow-ups only
            loss = cue_loss(model, [clip] * 2, rng, TrainConfig(cue_answer_share=share), "cpu")
            assert torch.isfinite(loss) and loss > 0
    finally:
        model.adapter = saved
