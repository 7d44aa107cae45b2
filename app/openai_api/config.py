"""What the HTTP API allows: access, limits and back-pressure, in one frozen dataclass."""

from dataclasses import dataclass

MODEL_ID = "lunettes"  # the name clients put in "model"; the LM's own name is accepted too
MiB = 1 << 20


@dataclass(frozen=True)
class ApiConfig:
    api_key: str | None = None  # required as "Authorization: Bearer KEY" on /v1/* when set
    allow_remote_media: bool = False  # fetch http(s) image URLs; off: only data: URLs
    max_body_bytes: int = 32 * MiB  # a request body above this is refused (413) unread
    body_timeout_s: float = 30.0  # a body not received within this is refused (408)
    max_image_pixels: int = 50_000_000  # per photo, read from its header before decoding
    max_audio_seconds: float = 30.0  # per clip; above 30 s the audio reader refuses it anyway
    max_media_parts: int = 8  # photos + clips in one request, all messages together
    max_text_chars: int = 200_000  # typed text in one request, all messages together
    max_tokens: int = 1024  # the most `max_tokens` a request may ask for
    default_max_tokens: int = 256  # when a request does not say
    default_repetition_penalty: float = 1.1  # as on the other surfaces; 1 = off
    max_waiting: int = 31  # requests let in beside one answering (batched or waiting); more: 429
    remote_media_bytes: int = 20 * MiB  # largest photo fetched from a URL
    remote_media_timeout_s: float = 10.0  # time to fetch one URL, connection included

    def __post_init__(self):
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty; leave it unset to serve without one")
        if self.max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {self.max_waiting}")
        if not 1 <= self.default_max_tokens <= self.max_tokens:
            raise ValueError(
                f"default_max_tokens must be in [1, {self.max_tokens}], "
                f"got {self.default_max_tokens}"
            )
