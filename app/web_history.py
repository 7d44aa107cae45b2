"""A browser session's conversations and memory in the store: what the web app keeps.

History joins a WebSession to the store for one owner (this browser's cookie, or the user
logged in with --auth). Each question is stored when it is asked, its photos and recording
copied into the data folder; its answer is stored as it grows, before each piece is shown,
so a server killed mid-answer keeps everything the person saw (reopened as "cut off").
"Remember ..." keeps a moment; a question about the person's own past is answered from
their moments (app/memory.py). A store that fails (a full disk) never stops an answer: the
turn says that it was not kept.
"""

import logging
import secrets
from dataclasses import dataclass

from app import memory
from app.store import conversations as talk
from app.store.database import Store
from app.store.files import StoreFull
from app.web_session import Turn, WebSession
from encoders.audio_io import load_audio
from encoders.image_io import load_image
from fusion.conversation import Message, Photo, Speech
from fusion.model import LunettesModel

BROWSER_COOKIE = "lunettes_browser"  # a long-lived random id: whose conversations these are
BROWSER_COOKIE_DAYS = 3650
NOT_KEPT = "not kept in your history: {reason}"
SPOKEN_TITLE = "Spoken question"
log = logging.getLogger(__name__)


def new_browser_id() -> str:
    return secrets.token_hex(16)


def owner_of(username: str | None, cookie: str | None) -> str | None:
    """Whose history a request reads: the logged-in user, else this browser; None without a
    (well-formed) cookie, when nothing is kept."""
    if username:
        return f"user:{username}"
    if cookie and len(cookie) == 32 and all(c in "0123456789abcdef" for c in cookie):
        return f"browser:{cookie}"
    return None


def ensure_history(session: WebSession, request) -> "History | None":
    """The session's history, made on its first event that carries the request (whose cookie
    or login names the owner); turns asked before are kept now. None: nothing is kept (no
    store, or no cookie)."""
    if session.history is None and session.store is not None and request is not None:
        cookies = getattr(request, "cookies", None) or {}
        owner = owner_of(getattr(request, "username", None), cookies.get(BROWSER_COOKIE))
        if owner is not None:
            session.history = History(session.store, owner)
            for turn in session.turns:
                session.history.keep_question(turn)
                session.history.keep_answer(turn)
    return session.history


@dataclass
class History:
    store: Store
    owner: str
    conversation_id: str | None = None  # the conversation shown; None until the first question
    untitled: bool = False  # titled SPOKEN_TITLE until its transcript is known

    # -- turns -------------------------------------------------------------------------------

    def keep_question(self, turn: Turn) -> None:
        """Store a new question (a new conversation for the first one)."""
        try:
            if self.conversation_id is None:
                self.conversation_id = talk.start(self.store, self.owner, turn.text or SPOKEN_TITLE)
                self.untitled = not turn.text
            photos = list(zip(turn.photo_files, turn.photo_labels))
            turn.stored_id = talk.add_turn(
                self.store, self.owner, self.conversation_id, turn.text, photos, turn.audio_file
            )
        except StoreFull as error:
            turn.not_kept = NOT_KEPT.format(reason=error.strerror)
        except Exception:
            log.exception("keeping a question failed")
            turn.not_kept = NOT_KEPT.format(reason="the store failed (logged)")

    def keep_answer(self, turn: Turn) -> None:
        """Store the answer as shown now, with the turn's state, transcript and timings."""
        if turn.stored_id is None:
            return
        try:
            read_as = turn.stats.read_as[0] if turn.stats and turn.stats.read_as else None
            talk.save_answer(
                self.store, self.owner, turn.stored_id, turn.answer, turn.state,
                transcript=turn.transcript, read_as=read_as, error=turn.error,
                timings_ms=turn.stats.timings_ms if turn.stats else None,
            )  # fmt: skip
            if self.untitled and turn.transcript:  # a spoken first question: its words
                talk.rename(self.store, self.owner, self.conversation_id, turn.transcript)
                self.untitled = False
        except Exception:
            log.exception("keeping an answer failed")
            turn.not_kept = NOT_KEPT.format(reason="the store failed (logged)")

    # -- conversations -----------------------------------------------------------------------

    def listed(self) -> list[tuple[str, str]]:
        """(title, id) of this owner's conversations, newest first: a dropdown's choices."""
        return [(s.title, s.id) for s in talk.listed(self.store, self.owner)]

    def resume(self, session: WebSession, conversation_id: str) -> None:
        """Show a stored conversation in the session, ready for follow-up questions."""
        talk.mark_cut_off(self.store, self.owner, conversation_id)
        stored = talk.turns(self.store, self.owner, conversation_id)  # NotFound: not theirs
        session.clear()
        for kept in stored:
            photos = [(load_image(path), label) for path, label in kept.photos if path.is_file()]
            turn = Turn(kept.question, None)
            question = Message("user", kept.question, [Photo(image) for image, _ in photos])
            if kept.audio is not None and kept.audio.is_file():
                question.speech = Speech(load_audio(kept.audio), transcript=kept.transcript or "")
                turn.audio_file = session.save_audio(question.speech.waveform, "question")
            for image, label in photos:
                turn.photo_files.append(session.save_photo(image))
                turn.photo_labels.append(label)
            turn.question, turn.answer, turn.error = question, kept.answer, kept.error
            turn.state = kept.state if kept.state in ("done", "failed", "stopped") else "cut off"
            turn.stored_id, turn.said_aloud = kept.id, True
            session.turns.append(turn)
        self.conversation_id = conversation_id

    def start_new(self) -> None:
        self.conversation_id, self.untitled = None, False

    def rename(self, title: str) -> None:
        if self.conversation_id is None:
            raise ValueError("ask a question first: this conversation is not kept yet")
        talk.rename(self.store, self.owner, self.conversation_id, title)

    def delete(self) -> None:
        if self.conversation_id is not None:
            talk.delete_conversation(self.store, self.owner, self.conversation_id)
        self.conversation_id = None

    # -- memory ------------------------------------------------------------------------------

    def remember_or_recall(
        self, model: LunettesModel, turn: Turn, conversation: list[Message], media_owner: str
    ) -> tuple[list[Message], str | None, bool]:
        """memory.remember_or_recall for this owner, with the turn's own files kept; the media
        from the cache of `media_owner` (the session's)."""
        return memory.remember_or_recall(
            self.store, self.owner, model, conversation, turn.text, turn.photo_files,
            turn.audio_file, media_owner,
        )  # fmt: skip
