"""The request bodies the API accepts: OpenAI's chat completion request, the parts Lunettes uses.

Strict types (a number where a string belongs is refused, not coerced). Fields OpenAI defines
that Lunettes has no use for (`user`, `metadata`, `tools`, ...) are accepted and ignored, as
other OpenAI-compatible servers do; fields whose answer it could not honour (`n` > 1,
`logprobs`) are refused by the routes.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg")
MAX_STOP_STRINGS = 4  # as OpenAI


def _unicode(text: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"): not text the tokenizer can read."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"not valid Unicode at character {error.start} (a lone surrogate)"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class TextPart(Schema):
    type: Literal["text"]
    text: Text


class ImageUrl(Schema):
    url: str = Field(description="a data: URL with base64 (http(s) only with --allow-remote-media)")
    detail: Literal["auto", "low", "high"] = "auto"  # accepted; the encoder has one resolution


class ImagePart(Schema):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(Schema):
    data: str = Field(description="the clip, base64-encoded")
    format: Literal[AUDIO_FORMATS]


class AudioPart(Schema):
    type: Literal["input_audio"]
    input_audio: InputAudio


UserPart = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="type")]


class SystemMessage(Schema):
    role: Literal["system", "developer"]
    content: Text | list[TextPart]


class UserMessage(Schema):
    role: Literal["user"]
    content: Text | list[UserPart]


class AssistantMessage(Schema):
    role: Literal["assistant"]
    content: Text | list[TextPart] | None = None


ChatMessage = Annotated[SystemMessage | UserMessage | AssistantMessage, Field(discriminator="role")]


class StreamOptions(Schema):
    include_usage: bool = False  # a last chunk with no choices and the usage


class AudioOutput(Schema):
    voice: str
    format: Literal["wav", "mp3", "flac", "opus", "pcm16"]


class ChatCompletionRequest(Schema):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="older name of max_completion_tokens")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="default 0 here (deterministic), not OpenAI's 1"
    )
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP_STRINGS)] | None = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    n: int = Field(1, ge=1, description="only 1 is supported")
    logprobs: bool | None = Field(None, description="not supported")
    repetition_penalty: float | None = Field(
        None, ge=1.0, le=2.0, description="vLLM's extension: > 1 discourages repeats; 1 = off"
    )
    modalities: list[Literal["text", "audio"]] | None = None
    audio: AudioOutput | None = Field(None, description="the voice, when modalities has audio")
    user: str | None = Field(None, max_length=128, description="whose memory, with `memory`")
    memory: bool = Field(
        False,
        description="Lunettes' extension: a last message asking to remember ('Remember that "
        "...') keeps a moment; a question about the person's own past is answered from their "
        "moments. Moments belong to the API key and `user`",
    )


class SpeechRequest(Schema):
    """OpenAI's POST /v1/audio/speech body (`instructions` and `stream_format` are ignored)."""

    model: str
    input: Text = Field(min_length=1, max_length=4096)
    voice: str
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
