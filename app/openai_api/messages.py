"""A request's messages -> the conversation LunettesModel answers (fusion Messages).

Every limit that needs no decoding (media count, one clip per message, typed text) is checked
first, so a request that breaks one costs nothing. Each request builds its own conversation:
nothing is shared between clients.
"""

from collections.abc import Awaitable, Callable

from app.openai_api import media
from app.openai_api.config import ApiConfig
from app.openai_api.errors import ApiError
from app.openai_api.schema import (
    AudioPart,
    ChatMessage,
    ImagePart,
    SystemMessage,
    TextPart,
    UserMessage,
)
from fusion.conversation import Message, user

RunBlocking = Callable[..., Awaitable]  # runs a blocking function in a worker thread


async def to_conversation(
    messages: list[ChatMessage], config: ApiConfig, run_blocking: RunBlocking
) -> list[Message]:
    check_limits(messages, config)
    conversation = []
    for index, message in enumerate(messages):
        if isinstance(message, UserMessage):
            conversation.append(await to_user(message, f"messages[{index}]", config, run_blocking))
        else:
            role = "system" if isinstance(message, SystemMessage) else "assistant"
            conversation.append(Message(role=role, text=text_of(message.content)))
    return conversation


def check_limits(messages: list[ChatMessage], config: ApiConfig) -> None:
    media_parts, characters = 0, 0
    for index, message in enumerate(messages):
        parts = message.content if isinstance(message.content, list) else []
        clips = sum(isinstance(part, AudioPart) for part in parts)
        if clips > 1:
            raise ApiError(
                400, f"messages[{index}] holds {clips} audio clips; send one clip per message",
                "too_many_audio_parts", f"messages[{index}].content",
            )  # fmt: skip
        media_parts += sum(isinstance(part, (AudioPart, ImagePart)) for part in parts)
        characters += len(text_of(message.content))
    if media_parts > config.max_media_parts:
        raise ApiError(
            400, f"the request holds {media_parts} photos and clips; the limit is "
            f"{config.max_media_parts}", "too_many_media_parts", "messages",
        )  # fmt: skip
    if characters > config.max_text_chars:
        raise ApiError(
            400, f"the messages hold {characters} characters of text; the limit is "
            f"{config.max_text_chars}", "text_too_long", "messages",
        )  # fmt: skip


async def to_user(
    message: UserMessage, param: str, config: ApiConfig, run_blocking: RunBlocking
) -> Message:
    if isinstance(message.content, str):
        return user(message.content)
    photos, speech = [], None
    for index, part in enumerate(message.content):
        where = f"{param}.content[{index}]"
        if isinstance(part, ImagePart):
            photos.append(
                await read_photo(part.image_url.url, f"{where}.image_url.url", config, run_blocking)
            )
        elif isinstance(part, AudioPart):
            clip = part.input_audio
            speech = await run_blocking(
                read_clip, clip.data, f"{where}.input_audio.data", config, clip.format
            )
    return user(text_of(message.content), photos, speech)


async def read_photo(url: str, param: str, config: ApiConfig, run_blocking: RunBlocking):
    if media.is_remote(url):
        data = await media.fetch(url, param, config)
        return await run_blocking(media.read_photo, data, param, config)
    return await run_blocking(_read_data_url_photo, url, param, config)


def _read_data_url_photo(url: str, param: str, config: ApiConfig):
    return media.read_photo(media.data_url_bytes(url, param), param, config)


def read_clip(data: str, param: str, config: ApiConfig, declared: str):
    return media.read_clip(media.clip_bytes(data, param), param, config, declared)


def text_of(content: str | list | None) -> str:
    """The typed text of a message: its string, or its text parts joined by new lines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))
