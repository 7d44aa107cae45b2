"""The web app: a multimodal chat (photos, speech, text) over a loaded LunettesModel.

The conversation lives in each browser session's chat history (Gradio's per-session state);
the model object is shared read-only. Nothing runs at import: `build_app` is called by
`lunettes serve`.
"""

import logging
import mimetypes
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from encoders.audio_io import load_audio
from encoders.errors import InputError
from encoders.image_io import load_image
from fusion.conversation import Message, user
from fusion.generate import GenerationOptions
from fusion.model import Chunk, Heard, LunettesModel, Stats

log = logging.getLogger(__name__)

HEARD_TITLE = "🎙️ Heard"
STATS_TITLE = "⏱️ Timing"
ERROR_MARK = "⚠️"
ANSWER_OPTIONS = GenerationOptions(max_new_tokens=256, repetition_penalty=1.1)


def build_app(model: LunettesModel) -> gr.ChatInterface:
    described = model.describe()
    adapter = (
        "trained"
        if described["adapter"]["trained"]
        else "untrained — answers about photos and speech are not meaningful yet"
    )
    description = (
        f"Show a photo, speak or type a question. Language model: {described['language_model']}. "
        f"Adapter: **{adapter}**."
    )

    def respond(message: dict, history: list[dict]) -> Iterator[list]:
        yield from answer(model, message, history)

    return gr.ChatInterface(
        respond,
        multimodal=True,
        title="Lunettes",
        description=description,
        textbox=gr.MultimodalTextbox(
            file_types=["image", "audio"],
            file_count="multiple",
            sources=["upload", "microphone"],
            placeholder="Ask about a photo, or record a question",
            label="Your message",
        ),
        chatbot=gr.Chatbot(label="Lunettes", height=520),
        fill_height=True,
    )


def answer(model: LunettesModel, message: dict, history: list[dict]) -> Iterator[list]:
    """One turn: yields the growing reply as a list of chat messages (notes, then the answer)."""
    try:
        conversation = to_conversation(history) + [
            to_user_message(message.get("text", ""), message.get("files", []))
        ]
        notes, text = [], ""
        for event in model.stream(conversation, ANSWER_OPTIONS):
            if isinstance(event, Heard):
                notes.append(gr.ChatMessage(content=event.text, metadata={"title": HEARD_TITLE}))
            elif isinstance(event, Chunk):
                text += event.text
            elif isinstance(event, Stats):
                notes.append(
                    gr.ChatMessage(content=format_stats(event), metadata={"title": STATS_TITLE})
                )
            yield notes + ([text] if text else [])
    except InputError as error:
        yield [f"{ERROR_MARK} {error}"]
    except Exception:
        log.exception("answer failed")
        yield [
            f"{ERROR_MARK} Something went wrong while answering; the error was logged. Please try again."
        ]


def to_conversation(history: list[dict]) -> list[Message]:
    """Gradio history (role, content parts) -> messages.

    Our own notes (titled messages) are left out, and so is a user turn that was answered
    with an error: it was never understood, and re-reading it would fail again.
    """
    messages: list[Message] = []
    pending: list[tuple[str, list[str]]] = []  # user entries since the last answer
    for entry in history:
        if (entry.get("metadata") or {}).get("title"):
            continue
        text, files = content_parts(entry.get("content", []))
        if entry["role"] == "user":
            pending.append((text, files))  # Gradio splits files and text into several entries
            continue
        if text.startswith(ERROR_MARK):
            pending = []
            continue
        if pending:
            messages.append(
                to_user_message(
                    "\n".join(t for t, _ in pending if t), [f for _, fs in pending for f in fs]
                )
            )
            pending = []
        if text:
            messages.append(Message(role="assistant", text=text))
    return messages


def content_parts(content) -> tuple[str, list[str]]:
    """A history entry's content -> (its text, its file paths)."""
    texts, files = [], []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, dict) and part.get("type") == "file":
            files.append(part["file"]["path"])
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
    return "\n".join(texts), files


def to_user_message(text: str, files: list) -> Message:
    """Typed text and attached files (photos, at most one recording) -> a user message."""
    photos, speech = [], None
    for file in files:
        path = file["path"] if isinstance(file, dict) else str(file)
        name = Path(path).name
        kind = (mimetypes.guess_type(path)[0] or "").split("/")[0]
        if kind == "image":
            photos.append(load_image(path, name=name))
        elif kind in ("audio", "video"):
            if speech is not None:
                raise InputError("send one spoken question per message")
            speech = load_audio(path, name=name)
        else:
            raise InputError(
                f"{name}: send photos or audio recordings; this kind of file is not supported"
            )
    return user(text.strip(), photos, speech)


def format_stats(stats: Stats) -> str:
    t = stats.timings_ms
    parts = [f"first token {t['first_token']:.0f} ms"]
    if t.get("encode_image"):
        parts.append(f"photo {t['encode_image']:.0f} ms")
    if t.get("encode_audio"):
        parts.append(f"speech {t['encode_audio'] + t.get('transcribe', 0):.0f} ms")
    parts.append(f"{stats.tokens_per_s:.1f} tokens/s")
    return " · ".join(parts)
