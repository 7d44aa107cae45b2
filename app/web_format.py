"""How a session looks in the page: chat messages, timing lines, the status line, the header.

Pure functions from session data to Gradio's chat messages and to strings; no events here.
Photos and recordings go into the chat as components, so that a photo carries its alt text
for screen readers and no "share" button (nothing leaves the machine).
"""

import html
import re

import gradio as gr
from whisper.tokenizer import LANGUAGES

from app.adapter_status import adapter_figures
from app.web_session import Turn
from fusion.model import Stats

ERROR_MARK = "⚠️"
SPOKEN_MARK = "🎙️"
TIMING_MARK = "⏱️"
TRANSLATION_MARK = "🌐"
UNREAD_MARK = "📎"
READ_AS_MARK = "read as:"  # the words the LM was given, when not the transcript's
PENDING = "…"
KEYBOARD_HELP = (
    "Keyboard: **Alt+M** goes to the message box, **Enter** sends, **Shift+Enter** starts a new "
    "line, **Alt+L** looks and asks (camera frame + your typed question), **Escape** stops the "
    "answer and the voice."
)


def chat_messages(turns: list[Turn]) -> list[dict]:
    """Turns -> Gradio chat messages: each question, its answer, then its timings."""
    messages = []
    for turn in turns:
        question = question_message(turn)
        if question["content"]:  # empty for a browser problem reported without a question
            messages.append(question)
        messages.extend(answer_messages(turn))
    return messages


def question_message(turn: Turn) -> dict:
    """The person's message: their photos, then what they typed; a spoken question's words,
    its recording, then its photos, once shown (Turn.held_for_voice). The recording is there
    from the first view, and the photos come after it: a recording's player first built (or
    rebuilt, moved by a part put before it) while the chat's updates stream in had its file's
    load aborted, an error the page reports (tests/test_web_phone.py)."""
    media: list = []
    if turn.audio_file is not None:
        # a file message, which the page plays as audio: a gr.Audio here would run ffprobe
        # on the file each time the chat is sent, at every update of a streamed answer
        media.append({"path": str(turn.audio_file), "alt_text": "your spoken question"})
    if not turn.held_for_voice:
        media += [
            gr.Image(
                str(path), alt_text=label, label=label, show_label=False, buttons=["fullscreen"]
            )
            for path, label in zip(turn.photo_files, turn.photo_labels)
        ]
    lines = []
    if turn.by_voice:
        said = turn.transcript
        if said is None:
            said = PENDING
        lines.append(f"{SPOKEN_MARK} {said.strip() or '(no words recognised)'}")
        read_as = turn.stats.read_as[0] if turn.stats and turn.stats.read_as else None
        if read_as and _words(read_as) != _words(said):
            lines.append(f"*{READ_AS_MARK}* {read_as.strip()}")
    if turn.text:
        lines.append(turn.text)
    lines += [f"{UNREAD_MARK} {name}" for name in turn.unread]
    words = ["\n\n".join(lines)] if lines else []
    content = words + media if turn.by_voice else media + words
    return {"role": "user", "content": content}


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def answer_messages(turn: Turn) -> list[dict]:
    """The answer so far (or the error), then a collapsed note with its timings."""
    parts = [turn.answer.strip()] if turn.answer.strip() else []
    if turn.translated_from and parts:
        language = LANGUAGES.get(turn.translated_from, turn.translated_from).capitalize()
        parts[0] = f"{TRANSLATION_MARK} *{language} → English:* {parts[0]}"
    if turn.state == "stopped":
        parts.append("*(stopped)*")
    if turn.state == "cut off":
        parts.append("*(cut off: the server stopped while answering)*")
    if turn.error:
        parts.append(error_text(turn.error))
    if turn.not_kept:
        parts.append(f"*({turn.not_kept})*")
    messages = [{"role": "assistant", "content": "\n\n".join(parts) or PENDING}]
    if turn.stats is not None:
        messages.append(
            {
                "role": "assistant",
                "content": timing_details(turn.stats),
                "metadata": {
                    "title": f"{TIMING_MARK} {timing_line(turn.stats, turn)}",
                    "status": "done",
                },
            }
        )
    return messages


def error_text(error: str) -> str:
    """'the audio is silent' -> '⚠️ The audio is silent'; a leading file name stays as it is."""
    if re.match(r"[a-z]+[\s,:;]", error):
        error = error[0].upper() + error[1:]
    return f"{ERROR_MARK} {error}"


def timing_line(stats: Stats, turn=None) -> str:
    """The latency of each stage: 'photo 116 ms · first token 310 ms · 64 tokens at 21.4/s';
    with the turn (web_session.Turn), a hands-free question's pause first, and the first
    token and sound counted from when the question was asked, whatever the answer waited for
    (a hands-free question's preparation goes on after its pause: app/web_partial.py)."""
    t = stats.timings_ms
    parts = []
    if turn is not None and turn.endpointing_ms:
        parts.append(f"pause {turn.endpointing_ms:.0f} ms")
        if not t.get("transcribe"):  # prepared from the pause on (app/web_partial.py), or a
            parts.append("transcribed and read from the pause on")  # clip answered again
    if t.get("encode_image"):
        parts.append(f"photo {t['encode_image']:.0f} ms")
    if t.get("encode_audio"):
        parts.append(f"speech {t['encode_audio']:.0f} ms")
    if t.get("transcribe"):
        parts.append(f"transcript {t['transcribe']:.0f} ms")
    if t.get("read_speech"):
        parts.append(f"reading {t['read_speech']:.0f} ms")
    first_token = turn.first_token_ms if turn is not None else None
    translated = turn is not None and turn.translated_from is not None  # no LM tokens
    parts.append(
        f"{'English text' if translated else 'first token'} "
        f"{first_token if first_token is not None else t['first_token']:.0f} ms"
    )
    if turn is not None and turn.first_audio_ms is not None:
        parts.append(f"first sound {turn.first_audio_ms:.0f} ms")
    if not translated:
        parts.append(f"{stats.new_tokens} tokens at {stats.tokens_per_s:.1f}/s")
    return " · ".join(parts)


def timing_details(stats: Stats) -> str:
    tokens = stats.prompt_tokens
    ending = "reached the length limit" if stats.finish_reason == "length" else "finished"
    return (
        f"Encoding photo {stats.timings_ms.get('encode_image', 0):.0f} ms and speech "
        f"{stats.timings_ms.get('encode_audio', 0):.0f} ms, transcribing "
        f"{stats.timings_ms.get('transcribe', 0):.0f} ms, reading speech as tokens "
        f"{stats.timings_ms.get('read_speech', 0):.0f} ms; first token after "
        f"{stats.timings_ms['first_token']:.0f} ms; {stats.new_tokens} tokens in "
        f"{stats.timings_ms['total'] / 1000:.1f} s ({stats.tokens_per_s:.1f} tokens/s, {ending}). "
        f"Prompt: {tokens.get('text', 0)} text, {tokens.get('image', 0)} photo and "
        f"{tokens.get('audio', 0)} speech tokens. Photos and speech already seen are not "
        "encoded again."
    )


def status_text(turn: Turn | None) -> str:
    """One line for the status region (read by screen readers when it changes)."""
    if turn is None:
        return "Ready."
    if turn.state == "failed":
        return error_text(turn.error or "")
    if turn.state == "stopped":
        return "Stopped."
    if turn.state == "cut off":
        return "This answer was cut off when the server stopped."
    if turn.state == "done":
        return f"Answered. {timing_line(turn.stats, turn)}." if turn.stats else "Answered."
    if turn.by_voice and turn.transcript is None:
        return "Listening to your question…"
    return "Answering…" if turn.answer else "Thinking…"


def status_html(text: str) -> str:
    return html.escape(text)


def header_markdown(described: dict) -> str:
    adapter = described["adapter"]
    if adapter["trained"]:
        adapter_line = f"**Adapter: trained** ({adapter_figures(adapter['metrics'])})."
    else:
        adapter_line = (
            "**Adapter: not trained yet.** Speech is transcribed correctly and photos and speech "
            "reach the language model, but its answers *about* them are not meaningful yet."
        )
    return (
        "# 👓 Lunettes\n"
        "Point the camera and ask out loud, or type and attach photos. "
        "Everything runs on this computer.\n\n"
        f"{adapter_line} Language model: {described['language_model']} · "
        f"vision: {described['vision_encoder']} · speech: {described['audio_encoder']}."
        + _receives_line(described.get("receives"))
    )


def _receives_line(receives: dict | None) -> str:
    if not receives:
        return ""
    return (
        f"\n\nThe language model receives, for a photo: {receives['photo']}; "
        f"for speech: {receives['speech']}."
    )
