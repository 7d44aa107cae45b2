"""Memory through the API: `"memory": true` in a chat completion request (Lunettes'
extension; with OpenAI's Python client, `extra_body={"memory": True}`).

Moments belong to the API key (a hash of it; no key: this server's keyless clients) and the
request's `user` field, so two users of one key, or two keys, never see each other's. The
question's photos and clip are written to a temporary folder first, then kept with the moment.
"""

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import soundfile
from starlette.requests import Request

from app import memory
from app.openai_api.worker import Event
from app.store.database import Store
from encoders.audio_io import SAMPLE_RATE
from fusion.conversation import Message
from fusion.model import Chunk, LunettesModel, Stats


def api_owner(request: Request, user: str | None) -> str:
    """'api:<16 hex digits of the key's SHA-256>[:<user>]'."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    owner = "api:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{owner}:{user}" if user else owner


def apply(
    store: Store, owner: str, model: LunettesModel, conversation: list[Message]
) -> tuple[list[Message], str | None, bool]:
    """memory.remember_or_recall for an API request (its media written out to be kept)."""
    question = conversation[-1]
    with tempfile.TemporaryDirectory(prefix="lunettes-api-") as folder:
        photos = []
        for index, photo in enumerate(question.photos):
            path = Path(folder) / f"photo-{index}.jpg"
            photo.image.save(path, quality=90)
            photos.append(path)
        clip = None
        if question.speech is not None:
            clip = Path(folder) / "clip.wav"
            soundfile.write(clip, question.speech.waveform, SAMPLE_RATE, subtype="PCM_16")
        return memory.remember_or_recall(
            store, owner, model, conversation, question.text, photos, clip
        )


def said(text: str) -> Iterator[Event]:
    """The events of an answer the model did not write (what was kept), as model.stream's."""
    yield Chunk(text)
    yield Stats(
        timings_ms={"first_token": 0.0, "total": 0.0}, new_tokens=0, tokens_per_s=0.0,
        prompt_tokens={}, finish_reason="stop",
    )  # fmt: skip
