"""The server's first answers, asked of itself as soon as it listens, so that a person's first
question is not the one that pays for every first time.

A fresh process runs each path slower the first time: Whisper's beam search, the reading of a
clip, the prompt's prefill in float32 and in bfloat16, the vision tower, the voice. The bench's
5 s spoken question, first token in a fresh process: 1068 ms, against 516-580 ms for the next
ones; after one spoken question of its own first, 643 ms (2026-12-04, AMD EPYC, 2 cores). So
the server asks itself, in a background thread, one spoken question and one photo with a typed
question (two new tokens each), and says one sentence. That takes ~2-3 s of CPU after the
server is up; a person who asks meanwhile is answered beside it, as anyone else would be.

The warm-up's owner is its own: nothing of it is found by anyone else (media_cache.py,
prefix_cache.py), and the prompts it kept are forgotten when it is done; the system prompt's
keys and values stay kept, as after any first answer.
"""

import logging
import threading

import numpy as np
from PIL import Image, ImageDraw

from app import speech_out
from encoders.audio_io import SAMPLE_RATE, resample
from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.model import LunettesModel

log = logging.getLogger(__name__)

OWNER = "\0lunettes-warm-up"  # no API key or session is named so
SPOKEN = "What time is it in Paris?"
TYPED = "What is in this picture?"
NEW_TOKENS = 2


def start_warm_up(model: LunettesModel) -> threading.Thread:
    """Warm the model up in a daemon thread (started) -> that thread."""
    thread = threading.Thread(target=warm_up, args=(model,), name="warm-up", daemon=True)
    thread.start()
    return thread


def warm_up(model: LunettesModel) -> None:
    """One spoken question and one photo with a typed question, as a person would ask them; a
    failure is logged, never raised: the server serves without it."""
    try:
        options = GenerationOptions(max_new_tokens=NEW_TOKENS)
        questions = [[user(TYPED, photos=[_picture()])]]
        clip = _said(SPOKEN)  # also loads the voice the answers are spoken in
        if clip is not None:
            questions.insert(0, [user(speech=clip)])
        for messages in questions:
            for _ in model.stream(messages, options, owner=OWNER):
                pass
    except Exception:  # a cold first answer is slower, not wrong
        log.exception("warming the model up failed; the first answers will be slower")
    finally:
        model.prefixes.forget(OWNER)


def _said(text: str) -> np.ndarray | None:
    """`text` in the answers' own voice, [S] float32 at 16 kHz; None without a voice."""
    try:
        samples, rate = speech_out.speak(text)
    except speech_out.SpeechError:
        return None
    return resample(samples, rate, SAMPLE_RATE).astype(np.float32) if len(samples) else None


def _picture() -> Image.Image:
    """A plain drawing: a red ball on a white ground, 224 x 224."""
    image = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(image).ellipse((48, 48, 176, 176), fill=(200, 30, 30))
    return image
