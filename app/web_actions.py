"""The web app's event handlers: Gradio values in, Gradio values out, one session each.

Every handler turns what a person's input (or a model failure) can cause into a message in
the chat starting with ⚠️, never a traceback; one session's failure never stops the server.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import gradio as gr
import numpy as np
import soundfile
from PIL import Image

from app import speech_out, voice_player
from app.sentences import Sentences, first_piece_written
from app.web_format import SPOKEN_MARK, chat_messages, error_text, status_html, status_text
from app.web_history import ensure_history
from app.web_session import Turn, WebSession, answer_next, read_files
from encoders.audio_io import resample
from encoders.errors import InputError
from fusion.generate import GenerationOptions
from fusion.model import LunettesModel

REPETITION_PENALTY = 1.1  # as on every user surface: keeps a small model from looping
SAMPLING_TOP_P = 0.95  # nucleus mass when the temperature is above 0
CAMERA_OFF = (
    "the camera is off: start it with the camera view's button (allow the camera if the "
    "browser asks), then look and ask again"
)
MEDIA_PROBLEMS = {
    "NotAllowedError": "permission was denied; allow the {device} for this page in the browser's "
    "site settings, then try again",
    "SecurityError": "permission was denied; allow the {device} for this page in the browser's "
    "site settings, then try again",
    "NotFoundError": "no {device} was found on this device",
    "OverconstrainedError": "no {device} was found on this device",
    "NotReadableError": "the {device} is in use by another application or could not be started",
    "InsecureContext": "the browser allows the {device} only on a secure page: open Lunettes over "
    "https, or at http://127.0.0.1 on the computer running it",
}

LISTENING_LOST = "ListeningLost"  # static/listener.js: its connection to the server closed
SPEAK_POLL_S = 0.05  # how often the voice looks for new sentences when the answer has no news
# The chat is sent to the page at most this often while an answer streams: each update is a
# round trip through Gradio's event loop (up to a quarter of a second when the microphone's
# chunks still went through it too), and the answer waited for each one, token by token.
UPDATE_EVERY_S = 0.1
log = logging.getLogger(__name__)

Chat = tuple[list[dict], str]  # the chat messages and the status line


def view(session: WebSession, turn: Turn | None = None) -> Chat:
    """The session's chat and a status line about `turn` (default: the last one)."""
    if turn is None and session.turns:
        turn = session.turns[-1]
    return chat_messages(session.turns), status_html(status_text(turn))


# -- questions: each adds a turn that `respond` answers next ------------------------------------


def send_message(
    box: dict | None, session: WebSession, request: gr.Request | None = None
) -> tuple[list[dict], str, None]:
    """The message box (typed text, attached photos and recordings) -> a new question."""
    ensure_history(session, request)
    text, paths = box_contents(box)
    if text.strip() or paths:
        add_question(session, text, paths)
    return *view(session), None  # None empties the box


def look_and_ask(
    box: dict | None, session: WebSession, request: gr.Request | None = None
) -> tuple[list[dict], str, dict | None]:
    """The current camera frame, with whatever is in the message box -> a new question."""
    ensure_history(session, request)
    text, paths = box_contents(box)
    frame = session.current_frame()
    if frame is None:
        session.refuse(text, [], CAMERA_OFF)
        return *view(session), gr.skip()  # the typed question stays in the box
    add_question(session, text, paths, frame)
    return *view(session), None


def push_to_talk(
    recording: str | None, session: WebSession, request: gr.Request | None = None
) -> tuple[list[dict], str, None]:
    """A finished recording (and the camera frame, when the camera is on) -> a new question."""
    ensure_history(session, request)
    if recording is None:
        return *view(session), None
    add_question(session, "", [recording], session.current_frame())
    return *view(session), None  # None empties the recorder for the next question


def add_question(
    session: WebSession, text: str, paths: list[str], frame: Image.Image | None = None
) -> None:
    """Read the attached files and add the question; what cannot be read is shown as an error."""
    try:
        photos, speech = read_files(paths)
        if frame is not None:
            photos.insert(0, (frame, "camera frame"))
        session.ask(text, photos, speech)
    except InputError as error:
        session.refuse(text, [Path(p).name for p in paths], str(error))
    except Exception:
        log.exception("reading a question failed")
        session.refuse(text, [Path(p).name for p in paths], "this could not be read (logged)")


def box_contents(box: dict | None) -> tuple[str, list[str]]:
    box = box or {}
    files = box.get("files") or []
    return box.get("text") or "", [f["path"] if isinstance(f, dict) else str(f) for f in files]


# -- answering ----------------------------------------------------------------------------------


def respond(
    model: LunettesModel,
    session: WebSession,
    max_tokens: float,
    temperature: float,
    system_prompt: str,
    translate: bool = False,
    request: gr.Request | None = None,
    voiced: bool = False,
) -> Iterator[Chat]:
    """Answer the waiting question, yielding the chat as the transcript and answer arrive
    (a spoken question's answer said aloud, from its voice's first sound: Turn.held_for_voice);
    with `translate`, a spoken question is translated into English instead of answered.
    request: names the owner of the history (a hands-free question comes with none).
    voiced: `speak` says the answer: once its first piece is written, the decoding pauses
    for the voice to be made at once (GenerationOptions.pause_after), if the voice is
    waiting for it (else it would pause for nobody, up to scheduler.MAX_HOLD_S)."""
    ensure_history(session, request)
    session.system_prompt, session.translating = system_prompt or "", bool(translate)
    try:
        options = GenerationOptions(
            max_new_tokens=int(max_tokens),
            temperature=float(temperature),
            top_p=SAMPLING_TOP_P if temperature > 0 else 1.0,
            repetition_penalty=REPETITION_PENALTY,
            pause_after=(lambda text: bool(session.voices) and first_piece_written(text))
            if voiced
            else None,
        )
    except (TypeError, ValueError) as error:
        if (turn := session.waiting()) is not None:
            turn.fail(f"the settings cannot be used: {error}")
        yield view(session)
        return
    if (waiting := session.waiting()) is not None:
        waiting.voiced = voiced
    yield view(session)  # the question at once (a hands-free one was added by the listener)
    shown_at = 0.0
    for turn in answer_next(model, session, options, system_prompt or "", bool(translate)):
        now = time.monotonic()
        if turn.state != "answering" or (
            now - shown_at >= UPDATE_EVERY_S and not turn.held_for_voice
        ):
            shown_at = now
            yield view(session, turn)
    yield view(session)  # last: whatever Stop or Clear did meanwhile


def speak(model: LunettesModel, session: WebSession, enabled: bool) -> Iterator[tuple]:
    """Say the answer aloud while it is written: each sentence (the first clause already,
    app/sentences.py) as soon as it ends, the first with no answer decoding beside its
    making (LunettesModel.decoding_held) -> (a message that plays it in the page's voice
    player, app/voice_player.py; the whole answer's voice, to play again, once it is said;
    the status line, only when the voice's first sound makes news or the voice fails; the
    chat, only when the answer was written before its first sound, so that the turn's
    timing note gets that figure too). Runs beside `respond`. Yields skips when it has
    nothing to say (a generator that yields nothing would empty its outputs, the status
    line included), and the chat when its question and answer waited for a voice that never
    began (silenced before it: Turn.held_for_voice)."""
    said, voice = False, object()
    session.voices.append(voice)  # the answer's decoding may pause for it (respond)
    try:
        for update in _spoken_pieces(model, session, enabled):
            said = True
            yield update
    finally:
        session.voices.remove(voice)
    if not said:
        turn = session.turns[-1] if session.turns else None
        waited = turn is not None and turn.voiced and turn.first_audio_ms is None
        yield gr.skip(), gr.skip(), gr.skip(), chat_messages(session.turns) if waited else gr.skip()


def _spoken_pieces(model: LunettesModel, session: WebSession, enabled: bool) -> Iterator[tuple]:
    turn = session.turns[-1] if session.turns else None
    if not enabled or turn is None or turn.said_aloud:
        return
    attempt, sentences, taken = turn.attempt, Sentences(), 0
    spoken: list[np.ndarray] = []  # the pieces said so far, [S] each at `spoken_rate`
    spoken_rate = 0

    def current() -> bool:  # not cleared, asked again or silenced meanwhile
        return turn in session.turns and turn.attempt == attempt and not turn.said_aloud

    while current():
        session.answer_news.clear()  # before reading: news after this wakes the wait below
        state, written = turn.state, turn.answer
        pieces = sentences.push(written[taken:])
        taken = len(written)
        if state == "done":
            pieces.append(sentences.end())
        elif state == "failed":
            pieces.append(error_text(turn.error or ""))
        for piece in filter(None, pieces):
            try:
                with model.decoding_held() if not spoken else nullcontext():
                    samples, rate = speech_out.speak(piece)
            except speech_out.SpeechError as error:
                if current():
                    turn.said_aloud = True
                    log.warning("speaking the answer failed: %s", error)
                    status = status_html(error_text(f"the answer cannot be spoken: {error}"))
                    yield gr.skip(), gr.skip(), status, chat_messages(session.turns)
                return
            if not current():
                return
            if len(samples):
                session.speaking(len(samples) / rate)
                status = chat = gr.skip()
                if turn.first_audio_ms is None:
                    turn.first_audio_ms = (time.monotonic() - turn.asked_at) * 1000
                    if turn.state == "done":  # written already: its timing note gets the figure
                        status = status_html(status_text(turn))
                        chat = chat_messages(session.turns)
                spoken_rate = spoken_rate or rate
                spoken.append(resample(samples, rate, spoken_rate))
                yield voice_player.play(session, samples, rate), gr.skip(), status, chat
        if state in ("done", "failed", "stopped"):
            turn.said_aloud = True
            if spoken:
                yield gr.skip(), _voice_file(session, spoken, spoken_rate), gr.skip(), gr.skip()
            return
        session.answer_news.wait(SPEAK_POLL_S)


def _voice_file(session: WebSession, spoken: list[np.ndarray], rate: int) -> str | dict:
    """The answer's whole voice as a WAV in the session's folder, for its player (its path;
    gr.skip() when it could not be written)."""
    path = session.new_file("answer", ".wav")
    try:
        soundfile.write(path, np.concatenate(spoken), rate, subtype="PCM_16")
    except OSError as error:  # a full disk: the voice was heard; only the replay is missing
        log.warning("keeping the spoken answer failed: %s", error)
        return gr.skip()
    return str(path)


def stop(session: WebSession) -> tuple[list[dict], str, str]:
    """Stop the answer being written (it ends at its next token), the questions waiting and
    the voice."""
    session.stop()
    session.silence()
    return *view(session), voice_player.stop(session)


def stop_speaking(session: WebSession) -> str:
    """Interrupt the voice and listen again at once."""
    session.silence()
    return voice_player.stop(session)


def voice_switched(enabled: bool, session: WebSession) -> str:
    """Speak answers aloud switched off: silence now; switched on: the next answer is said."""
    if enabled:
        return gr.skip()
    session.silence()
    return voice_player.stop(session)


def regenerate(session: WebSession, request: gr.Request | None = None) -> Chat:
    """Ask the last question again (`respond` runs next)."""
    ensure_history(session, request)
    if session.regenerate() is None:
        chat, _ = view(session)
        return chat, status_html("Nothing to regenerate: ask a question, or wait for the answer.")
    return view(session)


def clear(session: WebSession) -> tuple[list[dict], str, str, None, None]:
    session.clear()
    return [], status_html("Cleared: a new conversation."), voice_player.stop(session), None, None


# -- the camera, the microphone, the browser -------------------------------------------------


def see(frame: Image.Image | None, session: WebSession) -> None:
    """A streamed camera frame: kept as the session's current frame."""
    session.see(frame)


def heard_so_far(session: WebSession) -> str:
    """The status line with what Whisper heard so far of the question being spoken."""
    return status_html(f"{SPOKEN_MARK} {session.partial_shown} …")


def media_problem(session: WebSession, event: gr.EventData) -> Chat:
    """The browser could not open the camera or microphone (reported by the page script)."""
    data = getattr(event, "_data", None) or {}
    device = "camera" if str(data.get("device")) == "camera" else "microphone"
    name = str(data.get("name", ""))[:60]
    if name == LISTENING_LOST:
        session.refuse("", [], f"hands-free listening stopped: {str(data.get('message'))[:200]}")
        return view(session)
    if name in MEDIA_PROBLEMS:
        problem = MEDIA_PROBLEMS[name].format(device=device)
    else:  # the browser's own words
        problem = f"it could not be opened ({name}: {str(data.get('message', ''))[:200]})"
    session.refuse("", [], f"the {device} cannot be used: {problem}")
    return view(session)
