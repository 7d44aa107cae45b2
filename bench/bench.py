"""Lunettes benchmark: measured figures against the targets for a 2-core CPU, embedded bundle.

    .venv/bin/python bench/bench.py [--cache-dir DIR] [--image PATH] [--json PATH] [--threads N]

Rows (a benchmark, not a test: it never fails the run, it reports PASS/MISS per row):
1. warm start: wall time of a fresh process that imports the project and loads the model
   (converted weights already cached), median of 3;
2. photo + typed question -> first token, a fresh conversation each time (the photo is
   encoded every time), one warm-up then median of 5;
3. 5 s spoken question (espeak-ng speech padded with silence, no photo, no typed text) ->
   first token, which includes audio encoding and transcription; same protocol;
4. greedy decoding speed as a fraction of the memory-bandwidth bound, on the bytes read per
   token (one row decodes from the embedded GGUF's own blocks where the kernel reads them,
   fusion/row_linear.py; printed beside the same layers on their float32 weights).

Then, on the same model in the same run, the LM's linear layers on the embedded GGUF's own
4-bit weights (torch's int4 kernel, `--dtype int4`): decoding speed side by side with the
default, and the bound on the bytes those weights really take.

The 'other load' column is the CPU that other processes used while a row ran: with torch's
threads on every core, a busy neighbour slows the in-process rows far more than its share.

Ratio is oriented so that >= 1 means the target is met: target/measured for "at most"
targets, measured/target for "at least" targets.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # run as `python bench/bench.py`: sys.path[0] is bench/, where
    # `import bench` would find this file instead of the package of bench/browser.py & co.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

TARGET_WARM_START_S = 3.0
TARGET_PHOTO_FIRST_TOKEN_MS = 150.0
TARGET_SPEECH_FIRST_TOKEN_MS = 500.0
TARGET_STREAMS_8_X = 4.0  # 8 answers at once: aggregate tok/s over one answer's
TARGET_DECODE_FRACTION = 0.5

WARM_START_RUNS = 3
FIRST_TOKEN_RUNS = 5  # after one warm-up
DECODE_RUNS = 3
DECODE_TOKENS = 128
PROBE_BYTES = 1 << 30  # 1 GiB of float32
PROBE_RUNS = 7

QUESTION = "What is in this picture?"
SPOKEN_QUESTION = (
    "Hey, could you tell me what kind of plant this is and how often I should water it?"
)
SPEECH_SECONDS = 5.0
DECODE_PROMPT = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
)


# ----------------------------------------------------------------------------- inputs


def synthetic_photo(width: int = 1280, height: int = 960, seed: int = 0) -> Image.Image:
    """A deterministic, textured, photo-like RGB image: sky, ground, blurred objects, grain."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky = (
        np.array([110, 160, 225], np.float32) * (1 - y) + np.array([225, 235, 245], np.float32) * y
    )
    ground = np.array([70, 110, 45], np.float32) * (1 - y) + np.array([120, 90, 50], np.float32) * y
    horizon = (
        0.45 + 0.05 * np.sin(np.linspace(0, 3 * np.pi, width, dtype=np.float32))[None, :, None]
    )
    image = np.where(y < horizon, sky, ground) * np.ones((1, width, 1), np.float32)

    noise = np.zeros((height, width), np.float32)  # multi-octave value noise: texture
    for octave in range(1, 7):
        cells = rng.random((2**octave + 1, 2**octave + 1), dtype=np.float32)
        layer = Image.fromarray((cells * 255).astype(np.uint8)).resize(
            (width, height), Image.BICUBIC
        )
        noise += (np.asarray(layer, np.float32) / 255 - 0.5) / octave
    image += 40 * noise[:, :, None]

    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(25):  # objects: leaves, stones, a pot
        cx, cy = rng.integers(0, width), rng.integers(int(height * 0.3), height)
        rx, ry = rng.integers(20, 160), rng.integers(15, 120)
        colour = tuple(int(c) for c in rng.integers(20, 230, 3))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
    draw.rectangle((540, 520, 740, 800), fill=(165, 80, 45))  # a terracotta pot
    for angle in np.linspace(0.3, np.pi - 0.3, 9):  # its leaves
        tip = (640 + 260 * np.cos(angle), 520 - 300 * np.sin(angle))
        draw.line((640, 520, *tip), fill=(40, 130, 50), width=28)
    canvas = canvas.filter(ImageFilter.GaussianBlur(2.0))
    grain = rng.normal(0, 6, (height, width, 3)).astype(np.float32)  # sensor noise
    shading = 1.0 + 0.6 * noise[::-1, ::-1, None]  # texture and light across the objects too
    pixels = np.clip(np.asarray(canvas, np.float32) * shading + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def load_photo(path: str | None) -> tuple[Image.Image, str]:
    if path is None:
        return synthetic_photo(), "synthetic 1280x960"
    from encoders.image_io import load_image

    image = load_image(Path(path))
    return image, f"{path} ({image.width}x{image.height})"


def spoken_question(seconds: float = SPEECH_SECONDS) -> np.ndarray | None:
    """espeak-ng speech read with the project's reader, padded/trimmed with silence to `seconds`."""
    from encoders.audio_io import SAMPLE_RATE, load_audio

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "question.wav"
        subprocess.run([espeak, "-w", str(wav), SPOKEN_QUESTION], check=True, capture_output=True)
        waveform = load_audio(wav)
    samples = round(seconds * SAMPLE_RATE)
    return np.pad(waveform, (0, max(0, samples - waveform.shape[0])))[:samples].astype(np.float32)


# ----------------------------------------------------------------------------- measurements


WARM_START_CHILD = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
from fusion.bundle import BundleSpec, load_model
imported = time.perf_counter()
load_model(BundleSpec(cache_dir=Path(sys.argv[1]) if sys.argv[1] else None))
loaded = time.perf_counter()
print("BENCH " + json.dumps({"import_s": imported - start, "load_s": loaded - imported,
                             "ready_at": time.time()}), flush=True)
"""


def measure_warm_start(cache_dir: Path | None, threads: int | None = None) -> dict:
    """Fresh interpreter: import the project, load the model; wall time around the process."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch reads it at start-up
    command = [sys.executable, "-c", WARM_START_CHILD, str(cache_dir) if cache_dir else ""]
    walls, readies, cpus, imports, loads = [], [], [], [], []
    for _ in range(WARM_START_RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        launched_at = time.time()  # wall clock: comparable with the child's
        result = subprocess.run(
            command, check=False, cwd=ROOT, env=env, capture_output=True, text=True
        )
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        line = next((l for l in result.stdout.splitlines() if l.startswith("BENCH ")), None)
        if result.returncode != 0 or line is None:
            raise RuntimeError(
                f"warm-start child failed ({result.returncode}):\n{result.stderr[-2000:]}"
            )
        inner = json.loads(line[len("BENCH ") :])
        readies.append(inner["ready_at"] - launched_at)  # launch -> ready to answer
        imports.append(inner["import_s"])
        loads.append(inner["load_s"])
    return {
        "ready_s": statistics.median(readies),  # what a person waits for; process exit excluded
        "runs_ready_s": readies,
        "wall_s": statistics.median(walls),
        "import_s": statistics.median(imports),
        "load_s": statistics.median(loads),
        "runs_wall_s": walls,
        "cpu_s": statistics.median(
            cpus
        ),  # user + system of the child: less sensitive to contention
    }


def answer_stats(model, messages, options):
    from fusion.model import Stats

    stats = None
    for event in model.stream(messages, options):
        if isinstance(event, Stats):
            stats = event
    return stats


def forget_media_and_prompts(model) -> None:
    """As for a photo or clip seen for the first time: no media cache entry, and none of this
    person's earlier prompts kept (the system prompt stays kept, as in any server that has
    answered once: fusion/prefix_cache.py)."""
    model.media_cache.clear()
    model.prefixes.forget("")


def measure_first_token(model, make_messages, runs: int = FIRST_TOKEN_RUNS) -> dict:
    """One warm-up, then `runs` fresh conversations; medians of Stats.timings_ms."""
    from fusion.generate import GenerationOptions

    options = GenerationOptions(max_new_tokens=8)
    answer_stats(model, make_messages(), options)  # warm-up
    all_stats = []
    for _ in range(runs):
        forget_media_and_prompts(model)
        all_stats.append(answer_stats(model, make_messages(), options))
    keys = all_stats[0].timings_ms.keys()
    timings = {k: statistics.median(s.timings_ms[k] for s in all_stats) for k in keys}
    return {
        "first_token_ms": timings["first_token"],
        "runs_first_token_ms": [s.timings_ms["first_token"] for s in all_stats],
        "timings_ms": timings,
        "prompt_tokens": all_stats[-1].prompt_tokens,
        "transcript": (all_stats[-1].transcripts or [None])[0],
    }


def measure_resent_follow_up(model, waveform, runs: int = FIRST_TOKEN_RUNS) -> dict:
    """An API client's follow-up: the spoken question, its answer and a typed question, sent
    whole; first token with the clip from the media cache vs encoding it again (medians)."""
    from fusion.conversation import Message, user
    from fusion.generate import GenerationOptions

    options = GenerationOptions(max_new_tokens=8)

    def conversation():
        return [user(speech=waveform), Message("assistant", "Boil it for nine minutes."),
                user("And a soft one?")]  # fmt: skip

    cached, again = [], []
    for _ in range(runs):
        forget_media_and_prompts(model)
        again.append(answer_stats(model, conversation(), options).timings_ms["first_token"])
        cached.append(answer_stats(model, conversation(), options).timings_ms["first_token"])
    return {"cached_ms": statistics.median(cached), "again_ms": statistics.median(again)}


def lm_bytes_per_token(lm: torch.nn.Module) -> int:
    """Bytes of LM weights read to generate one token.

    Sum of numel * element_size over the LM's parameters and its int4 layers' buffers (packed
    codes, scales and zeros: the bytes really read), with the GGUF blocks in place of the
    float32 weight of each layer that decodes from them (fusion/row_linear.py);
    `parameters()` yields a tied input/output embedding once, which is right: the output
    projection reads the whole matrix every step, while the input lookup reads one row
    (negligible). Not counted: the KV cache (30 layers x 3 kv-heads x 64 x 2 x 4 B = 46 KB
    per past token for SmolLM2-135M, under 2 % of the weights even at 200 tokens) and
    activations.
    """
    from fusion.int4_linear import Int4Linear
    from fusion.row_linear import RowLinear

    weights = {id(w): w for w in lm.parameters()}
    weights.update(
        {id(b): b for m in lm.modules() if isinstance(m, Int4Linear) for b in m.buffers()}
    )
    for layer in lm.modules():
        if isinstance(layer, RowLinear) and layer.blocks is not None:
            weights.pop(id(layer.weight), None)
            weights[id(layer.blocks.data)] = layer.blocks.data
    return sum(w.numel() * w.element_size() for w in weights.values())


@contextmanager
def float32_rows(lm: torch.nn.Module):
    """Inside, the layers that decode from GGUF blocks read their float32 weights instead,
    through transformers' forward (library_forward)."""
    from fusion.row_linear import RowLinear

    kept = {m: m.blocks for m in lm.modules() if isinstance(m, RowLinear) and m.blocks is not None}
    for layer in kept:
        layer.blocks = None
    try:
        with library_forward(lm):
            yield bool(kept)
    finally:
        for layer, blocks in kept.items():
            layer.blocks = blocks


@contextmanager
def library_forward(lm: torch.nn.Module):
    """Inside, decode steps go through transformers' forward, not the LM's DecodeStep
    (fusion/decode_step.py): the same products, the same logits. Yields whether it had one."""
    step = lm.__dict__.pop("decode_step", None)
    try:
        yield step is not None
    finally:
        if step is not None:
            lm.decode_step = step


ADAPTER_LOAD_RUNS = 5
GEMV_RUNS = 5


@torch.inference_mode()
def measure_matrix_vector_ceiling(lm: torch.nn.Module) -> dict:
    """One row through every linear layer of the LM in order, nothing else: how fast the
    products are with no attention, norms or Python between them (best of GEMV_RUNS): with
    the layers as loaded (the decoding kernel, where built, from the GGUF's blocks where it
    reads them), the kernel on the float32 weights, oneDNN's packed weights alone (the
    library path) and torch's plain F.linear; and 8 rows (a decode batch) as loaded and with
    F.linear.

    Decoding cannot beat the first; the gap between it and decoding is per-layer overhead.
    """
    from encoders.packed_linear import PackedLinear

    layers = [m for m in lm.modules() if isinstance(m, torch.nn.Linear)]
    rows = {layer: torch.randn(1, layer.in_features) for layer in layers}
    batch = {layer: torch.randn(8, layer.in_features) for layer in layers}
    weight_bytes = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    loaded_bytes = sum(
        blocks.data.numel() if (blocks := getattr(layer, "blocks", None)) is not None
        else layer.weight.numel() * layer.weight.element_size()
        for layer in layers
    )  # fmt: skip

    def best_seconds(product) -> float:
        best = float("inf")
        for _ in range(GEMV_RUNS):
            start = time.perf_counter()
            for layer in layers:
                product(layer, rows[layer])
            best = min(best, time.perf_counter() - start)
        return best

    loaded = best_seconds(lambda layer, row: layer(row))
    with float32_rows(lm) as had_blocks:
        float32_kernel = best_seconds(lambda layer, row: layer(row)) if had_blocks else None
    plain = best_seconds(lambda layer, row: F.linear(row, layer.weight, layer.bias))
    packed = all(getattr(layer, "packed_weight", None) is not None for layer in layers)
    library = best_seconds(lambda layer, row: PackedLinear.forward(layer, row)) if packed else None
    loaded_8 = best_seconds(lambda layer, _: layer(batch[layer]))
    plain_8 = best_seconds(lambda layer, _: F.linear(batch[layer], layer.weight, layer.bias))
    return {
        "read_gb_s": loaded_bytes / loaded / 1e9,
        "ms": loaded * 1000,
        "bytes": loaded_bytes,
        "layers": len(layers),
        "layer_type": type(layers[0]).__name__ + (" from GGUF blocks" if float32_kernel else ""),
        "float32_kernel_ms": float32_kernel * 1000 if float32_kernel else None,
        "torch_ms": plain * 1000,
        "torch_read_gb_s": weight_bytes / plain / 1e9,
        "packed_ms": library * 1000 if library else None,
        "packed_read_gb_s": weight_bytes / library / 1e9 if library else None,
        "rows_8_ms": loaded_8 * 1000,
        "torch_rows_8_ms": plain_8 * 1000,
    }


def measure_adapter_load(model) -> dict | None:
    """Load the shipped adapter from disk a few times (file read + checks + weights)."""
    from fusion.adapter import Adapter
    from fusion.bundle import SHIPPED_ADAPTER

    if not (SHIPPED_ADAPTER / "adapter.json").is_file():
        return None
    times = []
    for _ in range(ADAPTER_LOAD_RUNS):
        start = time.perf_counter()
        adapter = Adapter.load(SHIPPED_ADAPTER, model.adapter.info.identities)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "path": str(SHIPPED_ADAPTER.relative_to(ROOT)),
        "trained": adapter.info.trained,
        "mib": sum(f.stat().st_size for f in SHIPPED_ADAPTER.iterdir()) / 2**20,
        "load_ms": statistics.median(times),
    }


def measure_bandwidth() -> dict:
    """Memory read bandwidth: torch sum over a 1 GiB float32 tensor, best of several runs,
    with the thread count torch uses for the model."""
    data = torch.ones(PROBE_BYTES // 4, dtype=torch.float32)
    data.sum()  # fault pages in, warm up the kernel
    best = float("inf")
    for _ in range(PROBE_RUNS):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    del data
    return {"read_gb_s": PROBE_BYTES / best / 1e9, "best_s": best}


STREAM_COUNTS = (1, 2, 4, 8)
STREAM_TOKENS = 48
STREAM_ROUNDS = 3  # each count this many times, the counts interleaved; medians reported
STREAM_QUESTIONS = (
    "Tell me a short story about a lighthouse keeper.",
    "Why is the sky blue?",
    "Write a poem about the sea.",
    "How do I boil an egg?",
    "What should I pack for a weekend in the mountains?",
    "Explain how a bicycle stays upright.",
    "Give me three ideas for a rainy afternoon.",
    "What is the difference between weather and climate?",
)


def measure_concurrent_streams(model) -> list[dict]:
    """N clients at once (threads), each streaming a different typed question, through the
    decode scheduler as the server runs it: aggregate tokens/s and first-token p95, medians
    over STREAM_ROUNDS rounds of every count in turn (this VM's speed drifts within minutes)."""
    import threading

    from fusion.conversation import user
    from fusion.generate import GenerationOptions
    from fusion.model import Stats

    options = GenerationOptions(max_new_tokens=STREAM_TOKENS, repetition_penalty=1.1)
    model.share()
    try:
        answer_stats(model, [user(STREAM_QUESTIONS[0])], options)  # warm-up
        rounds = []
        for count in STREAM_COUNTS * STREAM_ROUNDS:
            model.prefixes.forget("")  # each round's questions asked for the first time
            results: list[Stats] = []

            def ask(question: str, into: list) -> None:
                into.append(answer_stats(model, [user(question)], options))

            threads = [
                threading.Thread(target=ask, args=(q, results)) for q in STREAM_QUESTIONS[:count]
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            firsts = sorted(r.timings_ms["first_token"] for r in results)
            rounds.append({
                "streams": count,
                "tokens": sum(r.new_tokens for r in results),
                "aggregate_tokens_per_s": sum(r.new_tokens for r in results) / wall,
                "first_token_p95_ms": firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))],
            })  # fmt: skip
        rows = []
        for count in STREAM_COUNTS:
            mine = [r for r in rounds if r["streams"] == count]
            rows.append({
                "streams": count,
                "tokens": mine[0]["tokens"],
                "aggregate_tokens_per_s": statistics.median(r["aggregate_tokens_per_s"] for r in mine),
                "first_token_p95_ms": statistics.median(r["first_token_p95_ms"] for r in mine),
                "rounds_tokens_per_s": [round(r["aggregate_tokens_per_s"], 1) for r in mine],
            })  # fmt: skip
        return rows
    finally:
        model.unshare()


TTS_TEXT = (
    "The train to Lyon leaves from platform four at nine. Take the underpass, then the "
    "stairs on your left. It is about a five minute walk, so you have plenty of time."
)


def measure_listening() -> dict:
    """Hands-free listening (app/vad.py) over 60 s of a +20 dB noise step with nobody
    speaking (a fan, a canteen's babble): questions it would have asked (target 0); and a
    question said over the fan (target: heard)."""
    import numpy as np

    from app.vad import VoiceActivityDetector
    from encoders.audio_io import SAMPLE_RATE
    from tests.noise import at_dbfs, babble, fan, silence
    from tests.tiny import said

    def questions(audio):
        detector, found, step = VoiceActivityDetector(), 0, SAMPLE_RATE // 2
        for start in range(0, len(audio), step):
            found += len(detector.push(audio[start : start + step]))
        return found

    quiet = at_dbfs(silence(5.0, 1.0), -55)
    started = time.perf_counter()
    false = {
        name: questions(np.concatenate([quiet, at_dbfs(noise(60.0), -35)]))
        for name, noise in (("fan", fan), ("babble", babble))
    }
    seconds = time.perf_counter() - started
    spoken = at_dbfs(said("What does that sign say?"), -20)
    room = at_dbfs(fan(len(spoken) / SAMPLE_RATE + 4.0), -35)
    room[SAMPLE_RATE * 2 : SAMPLE_RATE * 2 + len(spoken)] += spoken
    return {
        "false_questions": false,
        "heard_over_fan": questions(room),
        "realtime_x": 130 / seconds,
    }


def measure_speech_out() -> dict | None:
    """The answer voice's real-time factor (compute seconds per second of speech), median of
    3, for the engine the app speaks English with."""
    from app import speech_out

    engine = speech_out.engine_for(TTS_TEXT)
    if engine is None:
        return None
    speech_out.speak("Warm up.", engine)  # loads the voice
    factors = []
    for _ in range(3):
        start = time.perf_counter()
        samples, rate = speech_out.speak(TTS_TEXT, engine)
        factors.append((time.perf_counter() - start) / (len(samples) / rate))
    return {"engine": engine, "real_time_factor": statistics.median(factors)}


def measure_speech_read_back(model, every: int = 2) -> dict | None:
    """POST /v1/audio/speech's output heard back: the evaluation half's natural questions
    (every `every`th) said as the endpoint says them (app/openai_api/speech.py speech_bytes:
    OpenAI's default voice, alloy, and format, mp3, through ffmpeg; wav without ffmpeg), read
    back as an upload is (encoders/audio_io.py) and transcribed by the project's own Whisper
    -> the word error over all of them, both sides through Whisper's English text normalizer
    ("two" and "2", "colour" and "color" alike); None without a voice. Piper varies its
    voice from one synthesis to the next, so the figure moves a little from run to run."""
    from whisper.normalizers import EnglishTextNormalizer

    from app import speech_out
    from app.openai_api.speech import speech_bytes
    from encoders.audio_io import load_audio
    from fusion.training.evaluate import edit_distance
    from fusion.training.natural_speech import natural_questions

    if speech_out.engine_for(TTS_TEXT) is None:
        return None
    response_format = "mp3" if shutil.which("ffmpeg") else "wav"
    texts = natural_questions("eval")[::every]
    normalise = EnglishTextNormalizer()
    errors = words = 0
    for text in texts:
        said = load_audio(speech_bytes(text, "alloy", response_format, 1.0), name="the speech")
        heard = model.transcriber(model.audio.encode(said)).text
        reference = normalise(text).split()
        errors += edit_distance(reference, normalise(heard).split())
        words += len(reference)
    return {"word_error": errors / words, "sentences": len(texts), "format": response_format}


def measure_browser_voice_loop() -> dict | None:
    """bench/voice_loop.py: hands-free questions in Chromium against `lunettes serve`; None
    (saying why) without Chromium or Playwright."""
    from bench.browser import CHROMIUM

    try:
        import playwright  # noqa: F401
    except ImportError:
        print("hands-free browser loop: SKIPPED (playwright is not installed)", flush=True)
        return None
    if not CHROMIUM.exists():
        print(f"hands-free browser loop: SKIPPED ({CHROMIUM} not found)", flush=True)
        return None
    from bench.voice_loop import measure_voice_loop

    print("hands-free browser loop: lunettes serve and Chromium ...", flush=True)
    return measure_voice_loop()


def measure_first_audio(model, waveform, runs: int = 3) -> dict:
    """A spoken question (already complete) -> the first piece of the answer spoken, as the
    API streams it: transcription, first tokens up to the first clause or sentence
    (app/sentences.py) from the decode scheduler's thread (as the server decodes), paused
    there (GenerationOptions.pause_after), its synthesis with the decoding held
    (LunettesModel.decoding_held). Medians over fresh clips (no media cache)."""
    from app import speech_out
    from app.sentences import Sentences, first_piece_written
    from fusion.conversation import user
    from fusion.generate import GenerationOptions
    from fusion.model import Chunk

    options = GenerationOptions(
        max_new_tokens=64, repetition_penalty=1.1, pause_after=first_piece_written
    )
    totals, pieces = [], []
    model.share()
    try:
        for _ in range(runs):
            forget_media_and_prompts(model)
            start = time.perf_counter()
            sentences, first = Sentences(), None
            events = model.stream([user(speech=waveform)], options)
            for event in events:
                if isinstance(event, Chunk):
                    done = sentences.push(event.text)
                    if done:
                        first = done[0]
                        break
            first = first or sentences.end()
            with model.decoding_held():  # as the API makes an answer's first sound
                speech_out.speak(first)
            totals.append((time.perf_counter() - start) * 1000)
            events.close()
            pieces.append(first)
    finally:
        model.unshare()
    return {"first_audio_ms": statistics.median(totals), "first_piece": pieces[-1]}


def measure_follow_up(model, image, runs: int = FIRST_TOKEN_RUNS) -> dict:
    """The third question of a conversation about a photo (its photo from the media cache):
    first token with the conversation so far kept (prefix_cache.py: the web app and an API
    client resending it alike) vs prefilled whole; medians."""
    from fusion.conversation import Message, user
    from fusion.generate import GenerationOptions

    options = GenerationOptions(max_new_tokens=8)
    earlier = [user(QUESTION, photos=[image]), Message("assistant", "This is a red bicycle."),
               user("What colour is it?"), Message("assistant", "It is red.")]  # fmt: skip
    kept, whole, prompt_tokens = [], [], 0
    for _ in range(runs):
        forget_media_and_prompts(model)
        answer_stats(model, earlier[:3], options)  # the conversation so far, as it was asked
        stats = answer_stats(model, [*earlier, user("Where could I buy one?")], options)
        kept.append(stats.timings_ms["first_token"])
        model.prefixes.forget("")
        stats = answer_stats(model, [*earlier, user("Where could I buy one?")], options)
        whole.append(stats.timings_ms["first_token"])
        prompt_tokens = sum(stats.prompt_tokens.values())
    return {"kept_ms": statistics.median(kept), "whole_ms": statistics.median(whole),
            "prompt_tokens": prompt_tokens}  # fmt: skip


def measure_decoding(model) -> dict:
    """Greedy decoding of DECODE_TOKENS from a text-only prompt, median Stats.tokens_per_s.

    The model's stop ids are emptied for the measurement so that every run decodes exactly
    DECODE_TOKENS tokens (an early end-of-text would leave too few to time).
    """
    from fusion.conversation import user
    from fusion.generate import GenerationOptions

    options = GenerationOptions(max_new_tokens=DECODE_TOKENS)
    saved, model.stop_ids = model.stop_ids, set()
    try:
        answer_stats(model, [user(DECODE_PROMPT)], GenerationOptions(max_new_tokens=8))  # warm-up
        runs = [answer_stats(model, [user(DECODE_PROMPT)], options) for _ in range(DECODE_RUNS)]
    finally:
        model.stop_ids = saved
    return {
        "tokens_per_s": statistics.median(s.tokens_per_s for s in runs),
        "runs_tokens_per_s": [s.tokens_per_s for s in runs],
        "new_tokens": [s.new_tokens for s in runs],
    }


def measure_int4_decoding(model, cache_dir: Path | None) -> dict | None:
    """measure_decoding after swapping the LM's linear layers for the embedded GGUF's own
    4-bit weights (as --dtype int4 loads them); None for an LM without that file."""
    from encoders.cache import default_cache_dir
    from fusion.language_model import EMBEDDED, use_int4_weights

    if model.lm_name is None or "embedded" not in model.lm_name:
        return None
    layers = use_int4_weights(model.lm, EMBEDDED, cache_dir or default_cache_dir())
    measured = measure_decoding(model)
    return {**measured, "layers": layers, "bytes_per_token": lm_bytes_per_token(model.lm)}


def measure_llama_cpp_decoding(model, threads: int | None) -> dict | None:
    """The peer: llama.cpp (llama-cpp-python) decoding the embedded LM's own Q4_1 GGUF, the
    same prompt's tokens, greedy, DECODE_TOKENS tokens (end of text not stopping it), the
    same threads; tok/s after the first token, as Stats.tokens_per_s. None (saying why)
    when llama-cpp-python is not installed (README: how to build it) or the LM is not the
    embedded one."""
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama.cpp peer: SKIPPED (llama-cpp-python is not installed)", flush=True)
        return None
    from fusion.language_model import embedded_gguf

    if model.lm_name is None or "embedded" not in model.lm_name:
        print("llama.cpp peer: SKIPPED (it runs the embedded LM's GGUF; this LM has none)")
        return None
    threads = threads or torch.get_num_threads()
    llm = Llama(
        model_path=str(embedded_gguf()), n_ctx=1024, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    text = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": DECODE_PROMPT}], add_generation_prompt=True, tokenize=False
    )
    prompt = model.tokenizer.encode(text, add_special_tokens=False)

    def once(tokens: int) -> float:
        times = []
        for _ in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            times.append(time.perf_counter())
            if len(times) == tokens:
                break
        return (len(times) - 1) / (times[-1] - times[0])

    once(8)  # warm-up
    runs = [round(once(DECODE_TOKENS), 1) for _ in range(DECODE_RUNS)]
    return {"tokens_per_s": statistics.median(runs), "runs_tokens_per_s": runs, "threads": threads}


# ----------------------------------------------------------------------------- contention


class CpuMonitor:
    """CPU time used by other processes while a phase ran, in cores (0.0: the machine was ours).

    Busy time of the whole machine (/proc/stat) minus this process and its waited-for children
    (/proc/self/stat); measured between `start()` and `stop()`. Linux only; None elsewhere.
    """

    def __init__(self):
        self._begin = None

    @staticmethod
    def _read():
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            values = [int(x) for x in fields]
            busy = (
                sum(values) - values[3] - (values[4] if len(values) > 4 else 0)
            )  # minus idle, iowait
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            ours = sum(int(x) for x in own[11:15])  # utime, stime, cutime, cstime
        except (OSError, ValueError, IndexError):
            return None
        return busy, ours, time.perf_counter()

    def start(self) -> None:
        self._begin = self._read()

    def stop(self) -> float | None:
        end = self._read()
        if self._begin is None or end is None or end[2] <= self._begin[2]:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        other = (end[0] - self._begin[0]) - (end[1] - self._begin[1])
        return max(0.0, other / tick / (end[2] - self._begin[2]))


CONTENDED_CORES = 0.25  # other processes using more than this while a row ran: figure is suspect


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def row(name, measured, unit, target, at_most: bool, fmt: str) -> dict:
    if measured is None:
        return {
            "name": name,
            "measured": None,
            "unit": unit,
            "target": target,
            "target_kind": "<=" if at_most else ">=",
            "ratio": None,
            "result": "SKIP",
            "fmt": fmt,
        }
    ratio = target / measured if at_most else measured / target
    return {
        "name": name,
        "measured": measured,
        "unit": unit,
        "target": target,
        "target_kind": "<=" if at_most else ">=",
        "ratio": ratio,
        "result": "PASS" if ratio >= 1.0 else "MISS",
        "fmt": fmt,
    }


def print_table(rows: list[dict]) -> None:
    header = ("benchmark", "measured", "target", "ratio", "result", "other load")
    lines = []
    for r in rows:
        measured = "n/a" if r["measured"] is None else f"{r['measured']:{r['fmt']}} {r['unit']}"
        target = f"{r['target_kind']} {r['target']:{r['fmt']}} {r['unit']}"
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        load = r.get("other_load_cores")
        load = "n/a" if load is None else f"{load:.2f} cores"
        lines.append((r["name"], measured, target, ratio, r["result"], load))
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="converted weights (default: the project's, $LUNETTES_CACHE or ~/.cache/lunettes)",
    )
    parser.add_argument(
        "--image", default=None, help="photo to ask about (default: a synthetic 1280x960 image)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this JSON file"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads, in this process and the warm-start children (default: torch's choice)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from fusion.bundle import BundleSpec, load_model
    from fusion.conversation import user

    started = time.perf_counter()
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, "
        f"torch threads {info['torch_threads']}, Python {info['python']}",
        flush=True,
    )

    try:  # transformers' "Loading weights" bar would clutter the report
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    spec = BundleSpec(cache_dir=args.cache_dir)
    print(
        "loading the model in this process (converts the embedded weights if not cached) ...",
        flush=True,
    )
    start = time.perf_counter()
    model = load_model(spec)
    in_process_load_s = time.perf_counter() - start

    monitor, other = CpuMonitor(), {}
    print(f"1/4 warm start: {WARM_START_RUNS} fresh processes ...", flush=True)
    monitor.start()
    warm = measure_warm_start(args.cache_dir, args.threads)
    other["warm_start"] = monitor.stop()

    image, image_label = load_photo(args.image)
    print(f"2/4 photo + typed question -> first token ({image_label}) ...", flush=True)
    monitor.start()
    photo = measure_first_token(model, lambda: [user(QUESTION, photos=[image])])
    other["photo"] = monitor.stop()

    waveform = spoken_question()
    speech = None
    if waveform is None:
        print("3/4 spoken question: SKIPPED (espeak-ng not found)", flush=True)
    else:
        print(f"3/4 {SPEECH_SECONDS:.0f} s spoken question -> first token ...", flush=True)
        monitor.start()
        speech = measure_first_token(model, lambda: [user(speech=waveform)])
        speech["resent"] = measure_resent_follow_up(model, waveform)
        speech["first_audio"] = measure_first_audio(model, waveform)
        other["speech"] = monitor.stop()

    print("4/4 decoding speed vs the memory-bandwidth bound ...", flush=True)
    monitor.start()
    bandwidth = measure_bandwidth()
    bytes_per_token = lm_bytes_per_token(model.lm)
    bound_tokens_per_s = bandwidth["read_gb_s"] * 1e9 / bytes_per_token
    decoding = measure_decoding(model)
    with library_forward(model.lm) as had_step:
        decoding["library_forward"] = measure_decoding(model) if had_step else None
    with float32_rows(model.lm) as had_blocks:
        decoding["float32_rows"] = measure_decoding(model) if had_blocks else None
    ceiling = measure_matrix_vector_ceiling(model.lm)
    other["decoding"] = monitor.stop()
    fraction = decoding["tokens_per_s"] / bound_tokens_per_s

    rows = [
        row("warm start (launch -> ready)", warm["ready_s"], "s", TARGET_WARM_START_S, True, ".2f"),
        row(
            "photo + typed question -> first token",
            photo["first_token_ms"],
            "ms",
            TARGET_PHOTO_FIRST_TOKEN_MS,
            True,
            ".0f",
        ),
        row(
            f"{SPEECH_SECONDS:.0f} s spoken question -> first token",
            speech["first_token_ms"] if speech else None,
            "ms",
            TARGET_SPEECH_FIRST_TOKEN_MS,
            True,
            ".0f",
        ),
        row("decoding speed / bandwidth bound", fraction, "", TARGET_DECODE_FRACTION, False, ".2f"),
    ]

    for r, phase in zip(rows, ("warm_start", "photo", "speech", "decoding")):
        r["other_load_cores"] = other.get(phase)
    print()
    print_table(rows)
    contended = [r["name"] for r in rows if (r["other_load_cores"] or 0) > CONTENDED_CORES]
    if contended:
        print(
            f"WARNING: other processes used CPU while these rows ran (see 'other load'); "
            f"their figures are pessimistic, rerun on an idle machine: {', '.join(contended)}"
        )
    print()
    print(
        f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, torch {info['torch']}, "
        f"torch threads {info['torch_threads']}"
    )
    print(
        f"warm start: launch -> ready {[round(x, 2) for x in warm['runs_ready_s']]} s; "
        f"whole process incl. exit: median {warm['wall_s']:.2f} s of {[round(x, 2) for x in warm['runs_wall_s']]}; "
        f"inside: import {warm['import_s']:.2f} s + load {warm['load_s']:.2f} s "
        f"(rest: interpreter start/exit); child CPU time {warm['cpu_s']:.2f} s; "
        f"in-process load here {in_process_load_s:.2f} s"
    )
    t = photo["timings_ms"]
    print(
        f"photo: first token {[round(x) for x in photo['runs_first_token_ms']]} ms; medians: "
        f"encode_image {t['encode_image']:.0f} ms, prompt + prefill {t['first_token'] - t['encode_image']:.0f} ms; "
        f"prompt tokens {photo['prompt_tokens']}"
    )
    if speech:
        t = speech["timings_ms"]
        rest = t["first_token"] - t["encode_audio"] - t["transcribe"] - t.get("read_speech", 0)
        print(
            f"speech: first token {[round(x) for x in speech['runs_first_token_ms']]} ms; medians: "
            f"encode_audio {t['encode_audio']:.0f} ms, transcribe {t['transcribe']:.0f} ms, "
            f"reading as tokens {t.get('read_speech', 0):.0f} ms, "
            f"prompt + prefill {rest:.0f} ms; prompt tokens {speech['prompt_tokens']}; "
            f"heard {speech['transcript']!r}"
        )
        first_audio = speech["first_audio"]
        print(
            f"spoken question -> first piece of the answer spoken (as the API streams it): "
            f"{first_audio['first_audio_ms']:.0f} ms (target <= 1000), first piece "
            f"{first_audio['first_piece']!r}"
        )
        resent = speech["resent"]
        print(
            f"an API follow-up resending that spoken turn: first token {resent['cached_ms']:.0f} ms "
            f"with its clip from the media cache vs {resent['again_ms']:.0f} ms encoding, "
            f"transcribing and reading it again"
        )
    print(
        f"decoding: {decoding['tokens_per_s']:.1f} tok/s (runs {decoding['runs_tokens_per_s']}, "
        f"{DECODE_TOKENS} new tokens, greedy) vs bound {bound_tokens_per_s:.1f} tok/s = "
        f"{bandwidth['read_gb_s']:.2f} GB/s read / {bytes_per_token / 1e6:.1f} MB of LM weights per token "
        f"({next(model.lm.parameters()).dtype})"
    )
    library = decoding["library_forward"]
    if library:
        print(
            f"decoding through the LM's decode step (fusion/decode_step.py: the same library "
            f"functions in a plain loop, joined block products; the same logits bit for bit) "
            f"{decoding['tokens_per_s']:.1f} tok/s vs transformers' forward on the same blocks "
            f"{library['tokens_per_s']:.1f} tok/s (runs {library['runs_tokens_per_s']}) = "
            f"{decoding['tokens_per_s'] / library['tokens_per_s']:.2f}x"
        )
    if decoding["float32_rows"]:
        rows32, blocks = decoding["float32_rows"], library or decoding
        print(
            f"decoding one row from the GGUF's own blocks (Q4_1 layers, Q8_0 output head: the "
            f"float32 weights bit for bit), through transformers' forward: "
            f"{blocks['tokens_per_s']:.1f} tok/s vs the same layers on their float32 weights "
            f"{rows32['tokens_per_s']:.1f} tok/s (runs {rows32['runs_tokens_per_s']}) = "
            f"{blocks['tokens_per_s'] / rows32['tokens_per_s']:.2f}x"
        )
    products = [
        f"{ceiling['ms']:.1f} ms as loaded ({ceiling['layer_type']}, {ceiling['bytes'] / 1e6:.0f} MB)"
    ]
    if ceiling["float32_kernel_ms"]:
        products.append(f"{ceiling['float32_kernel_ms']:.1f} ms by the kernel on float32 weights")
    if ceiling["packed_ms"]:
        products.append(f"{ceiling['packed_ms']:.1f} ms through oneDNN's packed weights")
    products.append(f"{ceiling['torch_ms']:.1f} ms through torch's F.linear")
    print(
        f"decoding: {bytes_per_token / 1e6 / (1000 / decoding['tokens_per_s']):.1f} GB/s achieved; "
        f"the {ceiling['layers']} linear layers alone, one row (no attention, norms or Python "
        f"between them): "
        + ", ".join(products)
        + f"; 8 rows: {ceiling['rows_8_ms']:.1f} ms as loaded vs {ceiling['torch_rows_8_ms']:.1f} "
        f"ms through F.linear"
    )
    follow_up = measure_follow_up(model, image)
    print(
        f"a follow-up (3rd question about a photo, {follow_up['prompt_tokens']} prompt tokens) "
        f"-> first token: {follow_up['kept_ms']:.0f} ms with the conversation's keys and "
        f"values kept vs {follow_up['whole_ms']:.0f} ms prefilled whole"
    )
    print(
        f"concurrent streams {STREAM_COUNTS}, {STREAM_TOKENS} tokens each, batched, {STREAM_ROUNDS} rounds ...",
        flush=True,
    )
    streams = measure_concurrent_streams(model)
    one = streams[0]["aggregate_tokens_per_s"]
    for r in streams:
        print(
            f"  {r['streams']} stream(s): aggregate {r['aggregate_tokens_per_s']:.1f} tok/s "
            f"= {r['aggregate_tokens_per_s'] / one:.2f}x one stream ({r['tokens']} tokens; "
            f"median of {r['rounds_tokens_per_s']}), first token p95 {r['first_token_p95_ms']:.0f} ms"
            + (f" (target >= {TARGET_STREAMS_8_X:.0f}x)" if r["streams"] == 8 else "")
        )
    listening = measure_listening()
    print(
        f"hands-free listening (Silero VAD): questions asked over 60 s of a +20 dB noise step "
        f"with nobody speaking: {listening['false_questions']} (target 0); a question said over "
        f"the fan heard {listening['heard_over_fan']} time(s) (target 1); "
        f"{listening['realtime_x']:.0f}x real time"
    )
    voice = measure_speech_out()
    if voice:
        print(
            f"answer voice ({voice['engine']}): real-time factor {voice['real_time_factor']:.3f} "
            f"(compute s per s of speech; target <= 0.1)"
        )
    read_back = measure_speech_read_back(model)
    if read_back:
        print(
            f"/v1/audio/speech read back by the project's Whisper ({read_back['sentences']} "
            f"natural questions, alloy, {read_back['format']}; Whisper's English normalizer): "
            f"word error {read_back['word_error']:.1%} (target <= 10%)"
        )
    print("int4 weights: the same decoding on the GGUF's own 4-bit weights ...", flush=True)
    int4 = measure_int4_decoding(model, args.cache_dir)
    if int4 is not None:
        int4_bound = bandwidth["read_gb_s"] * 1e9 / int4["bytes_per_token"]
        print(
            f"decoding, int4 (--dtype int4): {int4['tokens_per_s']:.1f} tok/s (runs "
            f"{int4['runs_tokens_per_s']}) vs the default's {decoding['tokens_per_s']:.1f} tok/s = "
            f"{int4['tokens_per_s'] / decoding['tokens_per_s']:.2f}x; "
            f"{int4['bytes_per_token'] / 1e6:.1f} MB of LM weights per token, bound "
            f"{int4_bound:.1f} tok/s, {int4['tokens_per_s'] / int4_bound:.2f} of it; "
            f"{int4['layers']} int4 layers"
        )
    peer = measure_llama_cpp_decoding(model, args.threads)
    if peer is not None:
        best = max(decoding["tokens_per_s"], int4["tokens_per_s"] if int4 else 0.0)
        print(
            f"decoding, llama.cpp on the same Q4_1 GGUF ({peer['threads']} threads): "
            f"{peer['tokens_per_s']:.1f} tok/s (runs {peer['runs_tokens_per_s']}); ours, best of "
            f"the default and int4: {best:.1f} tok/s = {best / peer['tokens_per_s']:.2f}x llama.cpp "
            f"(target >= 1.2x)"
        )
    adapter = measure_adapter_load(model)
    if adapter:
        print(
            f"adapter: {adapter['path']} ({'trained' if adapter['trained'] else 'untrained'}), "
            f"{adapter['mib']:.1f} MiB, loads in {adapter['load_ms']:.0f} ms (median of "
            f"{ADAPTER_LOAD_RUNS})"
        )
    loop = measure_browser_voice_loop()
    if loop:
        print(
            f"hands-free browser loop (Chromium, fake microphone, held-out neural voice): end "
            f"of speech -> first sound of the answer, median {loop['first_sound_ms']:.0f} ms "
            f"of {[round(x) for x in loop['runs_ms']]} (target <= 1000; the listener's pause "
            f"before it asks included)"
        )
        from bench.voice_loop import barge_in_line

        print(barge_in_line(loop["barge_in"]))
    total_s = time.perf_counter() - started
    print(f"benchmark took {total_s:.0f} s")

    if args.json:
        report = {
            "machine": info,
            "rows": [{k: v for k, v in r.items() if k != "fmt"} for r in rows],
            "warm_start": warm | {"in_process_load_s": in_process_load_s},
            "photo": photo | {"image": image_label},
            "speech": speech,
            "decoding": decoding
            | {
                "bandwidth_gb_s": bandwidth["read_gb_s"],
                "bytes_per_token": bytes_per_token,
                "bound_tokens_per_s": bound_tokens_per_s,
                "fraction_of_bound": fraction,
                "matrix_vector_ceiling": ceiling,
            },
            "streams": streams,
            "follow_up": follow_up,
            "voice": voice,
            "listening": listening,
            "browser_voice_loop": loop,
            "llama_cpp": peer,
            "adapter": adapter,
            "total_s": total_s,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
