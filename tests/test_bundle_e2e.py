"""End to end on the real embedded bundle (SmolLM2-135M, Whisper base, EfficientNet-Lite0).

`make test` prepares the bundle first; run alone, the first test converts it (~30 s).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bundle

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "examples" / "cat.jpg"
SPOKEN = "What is the weather like in Paris today?"
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


def lunettes(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "app.cli", *args]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SPOKEN], check=True)
    return path


@pytest.fixture(scope="module")
def model():
    from fusion.bundle import load_model

    return load_model()


def test_cli_photo_json_reports_answer_adapter_and_timings():
    result = lunettes(
        "ask", "--json", "--max-tokens", "24", "--image", str(PHOTO), "What is in this picture?"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["answer"].strip()
    assert report["adapter"]["trained"] is True  # the shipped adapter, with its figures
    assert report["adapter"]["metrics"]["named_images"] > 0
    # the 7x7 EfficientNet-Lite0 feature map, with the sentence naming it on both sides
    assert 49 < report["prompt_tokens"]["image"] <= 49 + 2 * 12
    assert "transcript" not in report and "read_as" not in report
    for key in ("load", "encode_image", "encode_audio", "first_token", "total"):
        assert report["timings"][key] >= 0
    assert report["timings"]["encode_image"] > 0
    assert report["tokens_per_s"] > 0


@needs_espeak
def test_cli_speech_json_has_correct_transcript(spoken_wav):
    from fusion.training.evaluate import edit_distance

    result = lunettes("ask", "--json", "--max-tokens", "16", "--audio", str(spoken_wav))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert normalise(report["transcript"]) == normalise(SPOKEN)
    # what the LM was given: the adapter alone reads "What is the history of Paris today?"
    read_as, spoken = normalise(report["read_as"]).split(), normalise(SPOKEN).split()
    assert edit_distance(spoken, read_as) <= 1, report["read_as"]
    assert report["prompt_tokens"]["audio"] > 0
    assert report["timings"]["encode_audio"] > 0


def test_cli_streams_plain_text_answer():
    result = lunettes("ask", "--max-tokens", "16", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


@pytest.mark.parametrize(
    ("make_input", "flag", "message"),
    [
        (lambda d: d / "missing.jpg", "--image", "not found"),
        (
            lambda d: write(d / "notes.jpg", b"these are my notes, not a photo"),
            "--image",
            "not an image",
        ),
        (
            lambda d: write(d / "cut.jpg", PHOTO.read_bytes()[:4000]),
            "--image",
            "could not be decoded",
        ),
        (lambda d: write(d / "empty.wav", b""), "--audio", "empty"),
        (lambda d: write(d / "noise.xyz", os.urandom(3000)), "--audio", "format"),
    ],
)
def test_cli_bad_input_is_one_clear_line_and_exit_2(tmp_path, make_input, flag, message):
    path = make_input(tmp_path)
    result = lunettes("ask", flag, str(path), "What is this?", timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_typed_question_gets_a_sensible_answer(model):
    from fusion.conversation import user
    from fusion.model import Chunk

    text = "".join(
        e.text
        for e in model.stream([user("What is the capital of France?")])
        if isinstance(e, Chunk)
    )
    assert "Paris" in text


@needs_espeak
def test_multi_turn_with_photo_then_speech_then_text(model, spoken_wav):
    from encoders.audio_io import load_audio
    from encoders.image_io import load_image
    from fusion.conversation import Message, user
    from fusion.generate import GenerationOptions
    from fusion.model import Chunk, Heard, Stats

    options = GenerationOptions(max_new_tokens=12)
    conversation = [user("What is in this picture?", [load_image(PHOTO)])]
    for turn in (user(speech=load_audio(spoken_wav)), user("And what colour is it?")):
        events = list(model.stream(conversation, options))
        conversation += [
            Message("assistant", "".join(e.text for e in events if isinstance(e, Chunk))),
            turn,
        ]
    events = list(model.stream(conversation, options))
    stats = events[-1]
    assert isinstance(stats, Stats)
    assert 49 < stats.prompt_tokens["image"] <= 49 + 2 * 12 and stats.prompt_tokens["audio"] > 0
    assert not any(isinstance(e, Heard) for e in events)  # the speech was transcribed once, earlier
    assert normalise(conversation[2].speech.transcript) == normalise(SPOKEN)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c == " ").strip()


@needs_espeak
def test_training_smoke_run_saves_a_trained_adapter(tmp_path):
    from fusion.adapter import CONFIG_FILE

    command = [sys.executable, "-m", "fusion.training", "train", "--smoke"]
    command += ["--checkpoint", str(tmp_path / "checkpoint"), "--out", str(tmp_path / "adapter")]
    command += ["--data-dir", str(tmp_path / "data")]  # the user's own cached sets stay as they are
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "adapter" / CONFIG_FILE).read_text())
    assert saved["trained"] is True
    assert set(saved["identities"]) == {"vision", "audio", "lm"}
    state = json.loads((tmp_path / "checkpoint" / "training_state.json").read_text())
    assert (state["align_step"], state["step"], state["cue_step"]) == (2, 3, 2)  # all kept


NATURAL = "How long should I boil an egg?"  # an everyday question, not a training template
# ... said by the held-out neural voice (Piper joe); kept as a file, as Piper's synthesis is
# not the same twice (VITS samples its noise)
NATURAL_WAV = ROOT / "assets" / "examples" / "boil-an-egg.wav"


def test_a_natural_question_in_the_neural_voice_is_answered_as_typed(model):
    """The LM reads the words said and answers them as it answers the same words typed."""
    from encoders.audio_io import load_audio
    from fusion.conversation import Message, user
    from fusion.training.evaluate import GREEDY, answer_text

    spoken = user(speech=load_audio(NATURAL_WAV))
    answer = answer_text(model, [spoken], GREEDY)
    assert normalise(model.tokenizer.decode(spoken.speech.reading)) == normalise(NATURAL)
    assert answer == answer_text(model, [Message("user", NATURAL)], GREEDY)


DRAWING = ROOT / "assets" / "examples" / "dolphin.png"  # openclipart, held out of training by path


def test_a_drawing_is_named_as_people_name_it_where_imagenet_cannot(model):
    """ImageNet has no dolphin (its label for this drawing: "a military aircraft"); the name
    head, trained on names people wrote, knows one."""
    from encoders.image_io import load_image
    from fusion.conversation import Message, Photo
    from fusion.training.evaluate import GREEDY, answer_text
    from fusion.training.vision_data import is_held_out

    assert is_held_out("/usr/share/openclipart/png/animals/fish/dolphin_enrique_meza_c_01.png")
    photo = Photo(load_image(DRAWING))
    answer = answer_text(
        model, [Message("user", "What is in this picture?", photos=[photo])], GREEDY
    )
    assert "dolphin" in answer.lower(), answer
    assert "dolphin" not in model.vision.labeller.phrase(photo.features)


UNSURE_DRAWING = ROOT / "assets" / "examples" / "star.png"  # openclipart, held out by path


def test_a_drawing_the_name_head_is_unsure_of_is_named_with_doubt(model):
    """The head's best name for this star drawing is right but unsure ("perhaps a star"): the
    answer says that it is not sure, then names it; asked to read it, no doubt is added."""
    from encoders.image_io import load_image
    from fusion.answer_opening import UNSURE_OPENING
    from fusion.conversation import Message, Photo
    from fusion.training.evaluate import GREEDY, answer_text
    from fusion.training.vision_data import is_held_out

    assert is_held_out("/usr/share/openclipart/png/shapes/stars/star_87pt04step.png")
    photo = Photo(load_image(UNSURE_DRAWING))
    asked = [Message("user", "What is in this picture?", photos=[photo])]
    answer = answer_text(model, asked, GREEDY)
    assert model.photo_phrase(photo) == "perhaps a star"
    assert answer.startswith(f"{UNSURE_OPENING} a star"), answer
    read = answer_text(model, [Message("user", "What does it say?", photos=[photo])], GREEDY)
    assert not read.startswith(UNSURE_OPENING), read


def test_a_colour_question_is_answered_with_the_photos_colours(model):
    """The tabby cat of the README's example, asked its colour: the answer says orange and
    brown (from its pixels), where the tokens alone gave "The cat is likely to be a cat."."""
    from encoders.image_io import load_image
    from fusion.conversation import Message, Photo
    from fusion.training.evaluate import GREEDY, answer_text

    photo = Photo(load_image(ROOT / "assets" / "examples" / "cat.jpg"))
    answer = answer_text(
        model, [Message("user", "What colour is the cat?", photos=[photo])], GREEDY
    )
    assert answer.startswith("Its main colours are orange and brown"), answer


def test_the_shipped_bundle_prefills_photos_on_bfloat16_copies_where_the_cpu_has_them(model):
    """The default `--dtype bf16-photos`: every packed layer of the LM holds a bfloat16 prompt
    copy on a CPU with bfloat16 instructions (none elsewhere), and decoding keeps float32."""
    import torch

    from encoders.packed_linear import PackedLinear, bfloat16_available

    packed = [
        m for m in model.lm.modules() if isinstance(m, PackedLinear) and m.packed_weight is not None
    ]
    assert packed, "the shipped LM runs on packed weights"
    copies = [m.prompt_weight for m in packed if m.prompt_weight is not None]
    assert len(copies) == (len(packed) if bfloat16_available() else 0)
    assert all(c.dtype == torch.bfloat16 for c in copies)
    assert all(m.packed_weight.dtype == torch.float32 for m in packed)


def test_a_photo_prefilled_on_one_thread_starts_the_prompt_of_its_question_on_two(model):
    """Hands-free, a question's camera frame is prefilled as the question begins, on a team
    of one thread while the browser keeps a core busy (app/web_partial.py); the question's
    own prompt may be built on a team of two. It must start after the photo's kept tokens
    all the same: the prefix cache reuses only vectors that are the same bits, and on an
    Intel Xeon the projection of a photo on two threads rounded apart from one's."""
    import torch
    from PIL import Image

    from fusion.conversation import user
    from fusion.openmp import set_threads_here

    frame, owner = Image.open(PHOTO).convert("RGB"), "one thread, then two"
    try:
        set_threads_here(1)
        model.prefill([user("", [frame])], owner)
        set_threads_here(2)
        question = [user("What is this?", [frame])]
        model.encode_media(question, owner)
        inputs = model.build_inputs(question, model.answer_opening(question))
    finally:
        set_threads_here(torch.get_num_threads())
    photo_rows = model.project_medium(
        "image", question[0].photos[0], model.lm.get_input_embeddings()
    )
    found, _, _ = model.prefixes.find(inputs.embeddings[0], inputs.layout, owner)
    system_prompt = model._opening[1].shape[1]
    assert found >= system_prompt + photo_rows.shape[0]
