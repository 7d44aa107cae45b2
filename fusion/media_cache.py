"""What encoding a photo or a clip produced, kept by the hash of its content.

An API client sends the whole conversation with every request, so each follow-up would
encode every earlier photo again and, worse, encode, transcribe and read every earlier clip
again (about 1.5 s for a spoken question on 2 cores). The model keeps what a medium gave
(vision tokens and the text read in a photo; Whisper's frames, transcript, language and
readings of a clip) under the SHA-256 of its pixels or samples, least recently used first
out, within a budget of bytes. A medium that comes back, from the same client or in the web
app's own history, is then free.

Only the same bytes find an entry, and what an entry holds is what those bytes give: a
client that sends a photo learns nothing from the cache that it could not compute from the
photo. The one thing it could learn is timing (a hit answers sooner: someone sent this very
photo lately), so the owner (an API key, a browser session) is part of the key: one owner's
media are never a hit for another.

Letters: N / T media tokens, C encoder width.
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields

import torch

from fusion.conversation import Message, Photo, Speech

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024


@dataclass
class _Entry:
    values: dict  # the medium's filled fields
    size: int  # bytes held


class MediaCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()  # the API runs requests in worker threads
        self.hits = 0  # media restored (the bench and tests read it)

    def restore(self, messages: list[Message], owner: str = "") -> int:
        """Fill every photo and clip that has no features from the cache -> how many were."""
        restored = 0
        for medium in _media(messages):
            if medium.features is not None:
                continue
            key = _key(medium, owner)
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
            if entry is None:
                continue
            for name, value in entry.values.items():
                if getattr(medium, name) in (None, ()):  # not filled yet
                    setattr(medium, name, value)
            self.hits += 1
            restored += 1
        return restored

    def keep(self, messages: list[Message], owner: str = "") -> None:
        """Keep what the conversation's encoded photos and clips hold (newest last)."""
        for medium in _media(messages):
            if medium.features is None:
                continue
            values = {
                f.name: getattr(medium, f.name)
                for f in fields(medium)
                if f.name not in ("image", "waveform") and getattr(medium, f.name) is not None
            }
            size = sum(_nbytes(value) for value in values.values())
            if size > self.budget_bytes:
                continue
            key = _key(medium, owner)
            with self._lock:
                old = self._entries.pop(key, None)
                self._held -= old.size if old else 0
                self._entries[key] = _Entry(values, size)
                self._held += size
                while self._held > self.budget_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._held -= dropped.size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = self.hits = 0

    @property
    def held_bytes(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._entries)


def _media(messages: list[Message]) -> list[Photo | Speech]:
    """The conversation's photos and clips that hold their content (evaluation passes clips
    as encoder frames alone, with no samples: those are not kept)."""
    found = []
    for message in messages:
        found += [photo for photo in message.photos if photo.image is not None]
        speech = message.speech
        if speech is not None and speech.waveform is not None and speech.waveform.size:
            found.append(speech)
    return found


def _key(medium: Photo | Speech, owner: str) -> str:
    """owner + the SHA-256 of the photo's mode, size and pixels, or of the clip's samples.
    Memoised on the medium (its content never changes once read)."""
    digest = getattr(medium, "_content_digest", None)
    if digest is None:
        content = hashlib.sha256()
        if isinstance(medium, Photo):
            image = medium.image
            content.update(f"photo {image.mode} {image.width}x{image.height} ".encode())
            content.update(image.tobytes())
        else:
            waveform = medium.waveform
            content.update(f"clip {waveform.dtype} {waveform.shape} ".encode())
            content.update(waveform.tobytes())
        digest = content.hexdigest()
        medium._content_digest = digest
    return f"{owner}\0{digest}"


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return 64 + sum(_nbytes(v) for v in value)
    if isinstance(value, str):
        return 49 + len(value)
    return 64
