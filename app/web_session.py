"""One browser session: its conversation, the latest camera frame, the hands-free listener.

A WebSession lives in the session's gr.State: each browser tab has its own, made when the page
loads and deleted, with its files, after the tab has been closed for a while. Nothing is shared
between sessions but the read-only model.

The conversation is a list of turns. Each question is a fusion Message whose photo and speech
features are computed once, by the first answer that reads them, and re-used by every
follow-up ("and what colour is it?" re-reads the earlier photo without encoding it again).
Nothing here imports gradio.
"""

import atexit
import itertools
import logging
import mimetypes
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile
from PIL import Image

from app.memory import recall_options
from app.vad import VoiceActivityDetector, microphone_samples
from app.web_partial import Partial
from encoders.audio_io import SAMPLE_RATE, check_speech, load_audio
from encoders.errors import InputError
from encoders.image_io import load_image
from fusion.conversation import Message, user
from fusion.generate import GenerationOptions
from fusion.model import DEFAULT_SYSTEM_PROMPT, Chunk, LunettesModel, Stats

FRAME_FRESH_S = 5.0  # a camera frame older than this: the camera is off
SHOWN_PHOTO_SIDE = 1024  # longest side of the copy of a photo shown in the chat
# A spoken question whose answer is said aloud is held for its voice (Turn.held_for_voice):
# the chat shows its photos, and the answer's words as they are written, once that voice has
# begun, or HELD_FOR_VOICE_S after it was asked (a slow or failed voice), whichever comes
# first. Shown at once, the page fetched, decoded and laid out the photo, and redrew the chat
# at each update of the streamed answer, while the answer's first words were decoded and
# voiced; with the browser on the same machine (local-first: a desktop's own browser, the
# bench's Chromium) that work took cores from them. Hands-free loop (bench/voice_loop.py, 5
# questions with the camera on, Intel Xeon, 2026-12-06, medians of runs in turn): photo and
# recording shown at once 1049 and 996 ms, neither in the chat 928 and 926 ms; the photo held,
# the answer's words streamed 1181, 1003, 1065, 1094 ms, held too 993, 1070, 989, 992. The
# recording stays in the first view (web_format.py question_message says why).
HELD_FOR_VOICE_S = 1.0
SPEAKING_MARGIN_S = 0.5  # the spoken answer is taken to last this much longer (its player)
# Speaking over an answer (barge-in): this much of the wearer's voice stops the answer and its
# voice, and what they say is the next question. Less ("yeah", "uh-huh", "right", a cough) is a
# backchannel: the answer goes on, and it is no question.
BARGE_IN_SPEECH_S = 0.4
# The voice pauses sooner, once HOLD_SPEECH_S of the wearer's voice is heard over it (as a
# person stops to listen), and plays on from there when what they said stays a backchannel
# and GO_ON_SILENCE_S of quiet follows it.
HOLD_SPEECH_S = 0.06  # two of the listener's 32 ms frames
GO_ON_SILENCE_S = 0.35
# A pause of QUICK_END_S ends a question whose partial transcript, of all that was said, ends
# in "?" or "!" (app/web_partial.py); other words get the listener's whole END_SILENCE_S, as
# a sentence that ends in "." may be only the first of two ("I lost my keys. Where ...").
QUICK_END_S = 0.4
QUESTION_ENDS = ("?", "!")
FILES_PREFIX = "lunettes-web-"  # + the server's process id: its sessions' files
MODEL_FAILED = "the model failed while answering (the error was logged); please try again"

log = logging.getLogger(__name__)

# "cut off": a stored answer whose server ended while writing it (app/web_history.py)
TurnState = Literal["waiting", "answering", "done", "stopped", "failed", "cut off"]


@dataclass(eq=False)
class Turn:
    """One question and its answer, as the model reads them and as the person sees them."""

    text: str  # what the person typed
    question: Message | None  # None when what was sent could not be read (error says why)
    photo_files: list[Path] = field(default_factory=list)  # copies shown in the chat
    photo_labels: list[str] = field(default_factory=list)  # their alt text
    audio_file: Path | None = None  # the spoken question, for replay
    unread: list[str] = field(default_factory=list)  # names of files that could not be read
    answer: str = ""
    stats: Stats | None = None
    error: str | None = None  # shown in place of an answer
    state: TurnState = "waiting"
    said_aloud: bool = False  # the answer was turned into speech
    voiced: bool = False  # its answer is to be said aloud (the page's voice on as it asked)
    attempt: int = 0  # answers asked for so far (regenerate asks again)
    asked_at: float = field(default_factory=time.monotonic)  # when it was asked (or again)
    # hands-free: the pause waited after the last word before asking (the end of the turn)
    endpointing_ms: float | None = None
    first_audio_ms: float | None = None  # asked -> the first sound of the spoken answer
    # asked -> the answer's first token, waits included (a hands-free question's preparation)
    first_token_ms: float | None = None
    translated_from: str | None = None  # translation mode: the language of what was said
    stored_id: int | None = None  # its row in the store (app/web_history.py), once kept
    not_kept: str | None = None  # why it could not be kept in the history (a full disk)

    @property
    def transcript(self) -> str | None:
        speech = self.question.speech if self.question else None
        return speech.transcript if speech else None

    @property
    def by_voice(self) -> bool:
        return bool(self.question and self.question.speech is not None)

    @property
    def held_for_voice(self) -> bool:
        """Whether the chat still holds back the question's photos and the answer's words: a
        spoken question whose first answer is said aloud, until that voice has begun or is
        silenced, or HELD_FOR_VOICE_S after it was asked (see HELD_FOR_VOICE_S); any other
        turn is shown at once."""
        waits = (
            self.by_voice
            and self.voiced
            and self.attempt == 0
            and self.first_audio_ms is None
            and not self.said_aloud
        )
        return waits and time.monotonic() - self.asked_at < HELD_FOR_VOICE_S

    def fail(self, error: str) -> None:
        self.error, self.state = error, "failed"


class News(threading.Event):
    """A threading.Event that a copied session gets afresh (gr.State deep-copies sessions)."""

    def __deepcopy__(self, memo) -> "News":
        return News()


@dataclass(eq=False)
class WebSession:
    turns: list[Turn] = field(default_factory=list)
    frame: Image.Image | None = None  # the latest camera frame
    frame_at: float = 0.0  # its time.monotonic()
    listener: VoiceActivityDetector = field(default_factory=VoiceActivityDetector)
    heard: np.ndarray | None = None  # a hands-free question waiting to be asked, [S] at 16 kHz
    heard_pause_s: float = 0.0  # the pause after it that ended it
    heard_count: int = 0  # questions heard hands-free so far
    ended: tuple[int, int] | None = None  # (utterance, samples) of the last one heard: its
    # preparation (app/web_partial.py) goes on once it is asked, as what was settled
    interruptions: int = 0  # answers stopped by the wearer speaking over them (barge-in)
    over_answer: bool = False  # the utterance being heard began over an answer
    barged: bool = False  # ... and stopped it
    utterances: int = 0  # utterances begun hands-free (names the one a partial belongs to)
    partial: Partial | None = None  # what Whisper heard so far of an utterance (web_partial.py)
    partial_at: float = 0.0  # time.monotonic() of its last partial transcript's start
    partial_pending: bool = False  # one is being made (app/web_partial.py)
    partial_shown: str = ""  # the last one the page was given
    prepared: tuple[int, int] | None = None  # (utterance, spoken frames) of the question
    # prepared during its pause (app/web_partial.py), so as to prepare each only once
    # ... that question [S] and the camera frame it was prepared with, which it is asked with
    prepared_view: tuple[np.ndarray, Image.Image | None] | None = None
    # (utterance, the camera frame as it began, None: none) for the frame it is asked with
    looked_at: tuple[int, Image.Image | None] | None = None
    # the page's settings its last answer was asked with, which a prepared question's prompt
    # is prefilled with (app/web_partial.py)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    translating: bool = False
    speaking_until: float = 0.0  # time.monotonic() when the spoken answer ends
    # set when the answer being written grows, for the voice that says it to look at once
    answer_news: threading.Event = field(default_factory=News)
    # the voices (web_actions.speak) saying its answers now (a list: append and remove are
    # atomic, and a count's += is not)
    voices: list = field(default_factory=list)
    # numbers the messages to the page's voice player (app/voice_player.py); next() on a count
    # is atomic, and the answer's voice and the microphone's handler both send them
    voice_messages: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    voice_held: bool = False  # the voice is paused: the wearer is speaking over it
    # the page's key to hands-free listening's WebSocket (app/listening.py): this tab's only
    listen_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    root: Path | None = None  # where the folder is made (None: the system's temp folder)
    folder: Path | None = None  # files shown in the chat or played; made on first use
    saved: int = 0  # files saved so far (names them)
    # whose media cache entries its turns may use (fusion/media_cache.py): this tab's only
    owner: str = field(default_factory=lambda: f"web:{secrets.token_hex(8)}")
    store: object | None = None  # app.store.database.Store: where its history can be kept
    history: object | None = None  # app.web_history.History: kept there, for its owner

    # -- questions -------------------------------------------------------------------------

    def ask(
        self,
        text: str,
        photos: Sequence[tuple[Image.Image, str]] = (),
        speech: np.ndarray | None = None,
    ) -> Turn:
        """A new question from typed text, (photo, alt text) pairs and a spoken clip [S] at 16 kHz."""
        text = text.strip()
        if not (text or photos or speech is not None):
            raise InputError("nothing to answer: type a question, attach a photo or record one")
        turn = Turn(text, user(text, [image for image, _ in photos], speech))
        for image, label in photos:
            turn.photo_files.append(self.save_photo(image))
            turn.photo_labels.append(label)
        if speech is not None:
            turn.audio_file = self.save_audio(speech, "question")
        self.turns.append(turn)
        if self.history is not None:
            self.history.keep_question(turn)
        return turn

    def ask_heard(self) -> Turn | None:
        """What hands-free listening just heard (`heard`, with the camera frame when there is
        one) -> a new question; one that cannot be read is refused, with the reason. None
        when nothing was heard."""
        try:
            heard = self.take_heard()
            if heard is None:
                return None
            frame = self.frame_for(heard)
            turn = self.ask("", [(frame, "camera frame")] if frame else [], heard)
        except InputError as error:
            return self.refuse("", [], str(error))
        turn.endpointing_ms = self.heard_pause_s * 1000
        return turn

    def frame_for(self, heard: np.ndarray) -> Image.Image | None:
        """The camera frame a question heard hands-free is asked with: the one it was prepared
        with during its pause (so that the answer finds it prepared), else the latest."""
        if self.prepared_view is not None and np.array_equal(self.prepared_view[0], heard):
            return self.prepared_view[1]
        return self.current_frame()

    def refuse(self, text: str, names: Sequence[str], error: str) -> Turn:
        """A question that could not be read: shown with the reason, never sent to the model."""
        turn = Turn(text.strip(), None, unread=list(names))
        turn.fail(error)
        self.turns.append(turn)
        return turn

    def waiting(self) -> Turn | None:
        return next((turn for turn in self.turns if turn.state == "waiting"), None)

    def busy(self) -> bool:
        return any(turn.state in ("waiting", "answering") for turn in self.turns)

    def conversation(self, upto: Turn | None, system_prompt: str = "") -> list[Message]:
        """The messages the model reads to answer `upto`: earlier questions and answers (not
        the unreadable or failed ones), then its question. upto None: those of every turn so
        far, which a question still to be asked follows."""
        messages = [Message("system", system_prompt.strip())] if system_prompt.strip() else []
        for turn in self.turns:
            if turn is upto:
                return messages + [turn.question]
            if turn.question is None or turn.state == "failed":
                continue
            messages.append(turn.question)
            if turn.answer.strip():
                messages.append(Message("assistant", turn.answer.strip()))
        if upto is None:
            return messages
        raise ValueError("the turn to answer is not in this conversation")

    # -- stop, regenerate, clear -------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the answer being written and the questions waiting; True if there were any."""
        stopped = False
        for turn in self.turns:
            if turn.state in ("waiting", "answering"):
                turn.state, stopped = "stopped", True
        return stopped

    def regenerate(self) -> Turn | None:
        """Make the last question wait for a new answer; None when there is none to redo."""
        last = self.turns[-1] if self.turns else None
        if last is None or last.question is None or last.state in ("waiting", "answering"):
            return None
        last.answer, last.stats, last.error, last.state = "", None, None, "waiting"
        last.said_aloud, last.attempt = False, last.attempt + 1
        last.asked_at, last.first_audio_ms, last.first_token_ms = time.monotonic(), None, None
        return last

    def clear(self) -> None:
        """A new conversation: no turns, no pending hands-free question, no files."""
        self.stop()
        self.turns = []
        self.heard, self.speaking_until = None, 0.0
        self.prepared_view = self.looked_at = None
        self.listener.reset()
        self.over_answer = self.barged = False
        self.close()
        if self.history is not None:  # the next question starts a new stored conversation
            self.history.start_new()

    def close(self) -> None:
        """Delete this session's files (gr.State's delete_callback, and clear)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    # -- camera and hands-free listening ------------------------------------------------------

    def see(self, frame: Image.Image | None) -> None:
        if frame is not None:
            self.frame, self.frame_at = frame, time.monotonic()

    def current_frame(self) -> Image.Image | None:
        """The latest camera frame, or None when the camera is off (no recent frame)."""
        if self.frame is None or time.monotonic() - self.frame_at > FRAME_FRESH_S:
            return None
        return load_image(self.frame)

    def hear(self, rate: int, data: np.ndarray) -> bool:
        """Feed a hands-free microphone chunk; True when a question just ended (in `heard`).

        Speaking over an answer that is written or spoken (barge-in): once BARGE_IN_SPEECH_S
        of the wearer's voice is heard, the answer stops (kept, marked stopped) with its
        voice (`interruptions` grows: the page empties its player), and the utterance is the
        next question. Its voice is held (`voice_held`) from HOLD_SPEECH_S of theirs on. A
        shorter utterance over an answer is a backchannel: the voice plays on. The
        assistant's own voice is kept out of the microphone by the browser's echo
        cancellation, and is quieter there than the wearer (vad.py's level test).
        """
        answering = self.busy() or time.monotonic() < self.speaking_until
        was_hearing = self.listener.in_question
        questions = self.listener.push(microphone_samples(rate, data))
        if not questions and self.listener.silent_s >= QUICK_END_S and self.asked_already():
            question = self.listener.end_now()
            questions = [question] if question is not None else []
        if questions:  # (before a new utterance that began in these samples is counted)
            self.ended = (self.utterances, len(questions[-1]))
        if self.listener.in_question and (not was_hearing or questions):  # a new utterance
            self.over_answer, self.barged = answering, False
            self.utterances, self.partial, self.partial_at = self.utterances + 1, None, 0.0
        if self.over_answer and not answering and not self.barged:
            self.over_answer = False  # the answer ended meanwhile: an ordinary question
        if self.over_answer and not self.barged and self.listener.voiced_s >= BARGE_IN_SPEECH_S:
            self.barged = True
            self.stop()
            self.silence()
            self.interruptions += 1
        self.voice_held = (
            self.over_answer
            and not self.barged
            and self.listener.voiced_s >= HOLD_SPEECH_S
            and self.listener.silent_s < GO_ON_SILENCE_S
        )
        if not questions:
            return False
        backchannel = self.over_answer and not self.barged
        if not self.listener.in_question:
            self.over_answer = self.barged = False
        if backchannel:
            return False
        self.heard, self.heard_count = questions[-1], self.heard_count + 1
        self.heard_pause_s = self.listener.last_pause_s
        return True

    def asked_already(self) -> bool:
        """The utterance being heard has paused, and its partial transcript, of all that was
        said, ends as a question does ("?" or "!"): the pause need not go on to END_SILENCE_S."""
        partial, listener = self.partial, self.listener
        return (
            listener.hearing
            and partial is not None
            and partial.covers(self.utterances, listener.spoken_frames)
            and partial.text.rstrip().endswith(QUESTION_ENDS)
        )

    def take_heard(self) -> np.ndarray | None:
        heard, self.heard = self.heard, None
        if heard is not None:
            check_speech(heard, "what was heard")
        return heard

    def speaking(self, seconds: float) -> None:
        """`seconds` more of the spoken answer play after what is queued: hands-free listening
        waits for their end."""
        now = time.monotonic()
        queued = max(now, self.speaking_until - SPEAKING_MARGIN_S)
        self.speaking_until = queued + seconds + SPEAKING_MARGIN_S

    def silence(self) -> None:
        """No voice for the answers so far, even one still being made; listen again at once."""
        for turn in self.turns:
            turn.said_aloud = True
        self.speaking_until, self.voice_held = 0.0, False

    # -- files ---------------------------------------------------------------------------------

    def new_file(self, stem: str, suffix: str) -> Path:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
        self.saved += 1
        return self.folder / f"{self.saved:04d}-{stem}{suffix}"

    def save_photo(self, image: Image.Image) -> Path:
        shown = image.copy()
        shown.thumbnail((SHOWN_PHOTO_SIDE, SHOWN_PHOTO_SIDE))
        path = self.new_file("photo", ".jpg")
        shown.save(path, quality=85)
        return path

    def save_audio(self, waveform: np.ndarray, stem: str) -> Path:
        path = self.new_file(stem, ".wav")
        soundfile.write(path, waveform, SAMPLE_RATE, subtype="PCM_16")
        return path


def answer_next(
    model: LunettesModel,
    session: WebSession,
    options: GenerationOptions,
    system_prompt: str = "",
    translate: bool = False,
) -> Iterator[Turn]:
    """Answer the oldest waiting turn in place; yields it after each change (its transcript is
    known, a piece of the answer, the timings), then once more when it is finished.

    A bad input or a model failure ends the turn with an error, never an exception. Stop (or
    Clear, or Regenerate) marks the turn and this generator returns at the model's next event;
    closing it (the page went away) also leaves the turn "stopped" with the answer so far.
    translate: a spoken question is not answered but translated into English (the answer is
    Whisper's translation of what was said: live translation mode).
    """
    turn = session.waiting()
    if turn is None:
        return
    turn.state, attempt = "answering", turn.attempt

    def current() -> bool:  # not stopped, cleared or asked again by a newer answer
        return turn.state == "answering" and turn.attempt == attempt

    try:
        speech = turn.question.speech if turn.question else None
        if translate and speech is not None:
            yield from _translated(model, turn, speech, current, session.owner)
            return
        conversation, kept = session.conversation(turn, system_prompt), None
        if session.history is not None:
            conversation, kept, recalled = session.history.remember_or_recall(
                model, turn, conversation, session.owner
            )
            options = recall_options(options) if recalled else options
        if kept is not None:  # "remember ...": what was kept is the answer
            turn.answer, turn.state = kept, "done"
        waited_ms = (time.monotonic() - turn.asked_at) * 1000  # before the model's own clock
        for event in (
            model.stream(conversation, options, owner=session.owner) if kept is None else ()
        ):
            if not current():
                return
            if isinstance(event, Chunk):
                turn.answer += event.text
                session.answer_news.set()  # the voice (web_actions.speak) may have a piece
            elif isinstance(event, Stats):
                turn.stats = event
                turn.first_token_ms = waited_ms + event.timings_ms["first_token"]
            _keep(session, turn)  # kept before it is shown: a crash loses nothing seen
            yield turn  # Heard: the transcript is on the question's speech already
        if current():
            turn.state = "done"
    except InputError as error:
        if current():
            turn.fail(str(error))
    except Exception:
        log.exception("answering failed")
        if current():
            turn.fail(MODEL_FAILED)
    finally:
        if current():  # the generator was closed: Stop
            turn.state = "stopped"
        session.answer_news.set()  # its end, too
        _keep(session, turn)
    yield turn


def _keep(session: WebSession, turn: Turn) -> None:
    if session.history is not None:
        session.history.keep_answer(turn)


def _translated(
    model: LunettesModel, turn: Turn, speech, current, owner: str = ""
) -> Iterator[Turn]:
    """Translation mode: the turn's answer is what was said, in English."""
    start = time.perf_counter()
    english, timings = model.translate(speech, owner)
    if not current():
        return
    elapsed = (time.perf_counter() - start) * 1000
    turn.answer, turn.translated_from = english, speech.language
    turn.stats = Stats(
        timings_ms={**timings, "first_token": elapsed, "total": elapsed},
        new_tokens=0, tokens_per_s=0.0, prompt_tokens={}, finish_reason="stop",
        transcripts=[speech.transcript or ""],
    )  # fmt: skip
    turn.state = "done"
    yield turn


def files_root() -> Path:
    """A folder for this server's sessions' files, deleted when the server exits; the folders
    of servers that were killed (and could not delete theirs) are deleted now."""
    for old in Path(tempfile.gettempdir()).glob(f"{FILES_PREFIX}*-*"):
        pid = old.name.removeprefix(FILES_PREFIX).split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix=f"{FILES_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_files(paths: Sequence[str]) -> tuple[list[tuple[Image.Image, str]], np.ndarray | None]:
    """Attached files -> ((photo, alt text) pairs, one spoken clip or None).

    Raises InputError for an unreadable, huge or unsupported file, or for two recordings.
    """
    photos, speech = [], None
    for path in paths:
        name = Path(path).name
        kind = (mimetypes.guess_type(name)[0] or "").split("/")[0]
        if kind == "image":
            photos.append((load_image(path, name=name), f"your photo {name}"))
        elif kind in ("audio", "video"):
            if speech is not None:
                raise InputError("send one spoken question per message")
            speech = load_audio(path, name=name)
        else:
            raise InputError(
                f"{name}: send photos or audio recordings; this kind of file is not supported"
            )
    return photos, speech
