"""Conversations that last: stored turn by turn, listed, resumed, renamed, deleted, exported.

Every function takes the owner and touches only that owner's rows: a conversation id from
another browser or user is answered as if it did not exist (NotFound), never shown.
A turn is stored when it is asked and again as its answer grows (`save_answer`), so a server
killed mid-answer keeps what was already shown; such a turn is reopened as "cut off".
"""

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select

from app.store.database import Store
from app.store.files import forget_file, keep_file
from app.store.schema import Conversation, MediaFile, TurnRow, now

TITLE_CHARS = 60  # a conversation is titled by its first question, this long at most
UNFINISHED = ("waiting", "answering")  # a stored turn left so by a server that ended: cut off


class NotFound(LookupError):
    """No such conversation for this owner (it may belong to someone else)."""


@dataclass
class StoredTurn:
    id: int
    question: str
    answer: str
    state: str
    transcript: str | None = None
    read_as: str | None = None
    error: str | None = None
    timings_ms: dict = field(default_factory=dict)
    created_at: datetime | None = None
    photos: list[tuple[Path, str]] = field(default_factory=list)  # (file, alt text)
    audio: Path | None = None


@dataclass
class Summary:
    id: str
    title: str
    updated_at: datetime


def title_of(question: str) -> str:
    words = " ".join(question.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1].rstrip() + "…"


def start(store: Store, owner: str, first_question: str) -> str:
    """A new conversation titled by its first question; returns its id."""
    conversation_id = secrets.token_hex(16)
    with store.session() as session:
        session.add(
            Conversation(
                id=conversation_id, owner=owner, title=title_of(first_question) or "Untitled"
            )
        )
    return conversation_id


def listed(store: Store, owner: str, limit: int = 200) -> list[Summary]:
    """The owner's conversations, the most recently used first."""
    with store.session() as session:
        rows = session.scalars(
            select(Conversation)
            .where(Conversation.owner == owner)
            .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc())
            .limit(limit)
        )
        return [Summary(row.id, row.title, row.updated_at) for row in rows]


def add_turn(
    store: Store,
    owner: str,
    conversation_id: str,
    question: str,
    photos: list[tuple[Path, str]] = (),
    audio: Path | None = None,
    state: str = "waiting",
) -> int:
    """Store a question (its photos and recording copied into the data folder); its id.

    Raises StoreFull (files.py) when the disk is full; nothing of the turn is stored then.
    """
    kept = [(keep_file(store.data_dir, path, "photo"), label, "photo") for path, label in photos]
    if audio is not None:
        kept.append((keep_file(store.data_dir, audio, "audio"), audio.name, "audio"))
    with store.session() as session:
        conversation = _owned(session, owner, conversation_id)
        position = len(
            session.scalars(
                select(TurnRow.id).where(TurnRow.conversation_id == conversation.id)
            ).all()
        )
        row = TurnRow(
            conversation_id=conversation.id, position=position, question=question,
            answer="", state=state, timings_ms={},
        )  # fmt: skip
        session.add(row)
        session.flush()
        for path, label, kind in kept:
            session.add(MediaFile(turn_id=row.id, kind=kind, path=path, label=label))
        conversation.updated_at = now()
        return row.id


def save_answer(
    store: Store,
    owner: str,
    turn_id: int,
    answer: str,
    state: str,
    *,
    transcript: str | None = None,
    read_as: str | None = None,
    error: str | None = None,
    timings_ms: dict | None = None,
) -> None:
    """The answer so far and the turn's state (and what is known of its reading and timing)."""
    with store.session() as session:
        row = session.get(TurnRow, turn_id)
        if row is None:
            raise NotFound(f"no turn {turn_id}")
        _owned(session, owner, row.conversation_id)
        row.answer, row.state, row.error = answer, state, error
        if transcript is not None:
            row.transcript = transcript
        if read_as is not None:
            row.read_as = read_as
        if timings_ms is not None:
            row.timings_ms = {k: round(float(v), 1) for k, v in timings_ms.items()}


def turns(store: Store, owner: str, conversation_id: str) -> list[StoredTurn]:
    """The conversation's turns in order; one left unfinished by an ended server is "cut off"."""
    with store.session() as session:
        _owned(session, owner, conversation_id)
        rows = session.scalars(
            select(TurnRow)
            .where(TurnRow.conversation_id == conversation_id)
            .order_by(TurnRow.position, TurnRow.id)
        ).all()
        media = session.scalars(
            select(MediaFile)
            .where(MediaFile.turn_id.in_([row.id for row in rows]))
            .order_by(MediaFile.id)
        ).all()
        stored = []
        for row in rows:
            turn = StoredTurn(
                row.id, row.question, row.answer, row.state, row.transcript, row.read_as,
                row.error, dict(row.timings_ms or {}), row.created_at,
            )  # fmt: skip
            for item in media:
                if item.turn_id == row.id:
                    path = store.data_dir / item.path
                    if item.kind == "photo":
                        turn.photos.append((path, item.label))
                    else:
                        turn.audio = path
            stored.append(turn)
        return stored


def mark_cut_off(store: Store, owner: str, conversation_id: str) -> int:
    """Turns left waiting or answering (their server ended): stored as "cut off"; how many."""
    with store.session() as session:
        _owned(session, owner, conversation_id)
        rows = session.scalars(
            select(TurnRow).where(
                TurnRow.conversation_id == conversation_id, TurnRow.state.in_(UNFINISHED)
            )
        ).all()
        for row in rows:
            row.state = "cut off"
        return len(rows)


def rename(store: Store, owner: str, conversation_id: str, title: str) -> None:
    title = title_of(title)
    if not title:
        raise ValueError("a conversation's name cannot be empty")
    with store.session() as session:
        _owned(session, owner, conversation_id).title = title


def delete_conversation(store: Store, owner: str, conversation_id: str) -> None:
    """The conversation, its turns and their files, gone."""
    with store.session() as session:
        conversation = _owned(session, owner, conversation_id)
        ids = select(TurnRow.id).where(TurnRow.conversation_id == conversation.id)
        files = session.scalars(select(MediaFile.path).where(MediaFile.turn_id.in_(ids))).all()
        session.execute(delete(MediaFile).where(MediaFile.turn_id.in_(ids)))
        session.execute(delete(TurnRow).where(TurnRow.conversation_id == conversation.id))
        session.delete(conversation)
    for path in files:
        forget_file(store.data_dir, path)


def title(store: Store, owner: str, conversation_id: str) -> str:
    with store.session() as session:
        return _owned(session, owner, conversation_id).title


def export_markdown(store: Store, owner: str, conversation_id: str) -> str:
    lines = [f"# {title(store, owner, conversation_id)}", ""]
    for turn in turns(store, owner, conversation_id):
        when = f" ({turn.created_at:%Y-%m-%d %H:%M} UTC)" if turn.created_at else ""
        asked = turn.question or (f"🎤 {turn.transcript}" if turn.transcript else "")
        lines += [f"**You**{when}: {asked}".rstrip()]
        lines += [f"![{label}]({path.name})" for path, label in turn.photos]
        if turn.audio is not None:
            lines.append(f"[recording]({turn.audio.name})")
        answer = turn.answer or (turn.error or "")
        suffix = " *(cut off)*" if turn.state in ("stopped", "cut off") else ""
        lines += ["", f"**Lunettes**: {answer}{suffix}", ""]
    return "\n".join(lines)


def export_json(store: Store, owner: str, conversation_id: str) -> dict:
    """The conversation with every turn, its photos and recording inlined as base64."""

    def inline(path: Path) -> str | None:
        return base64.b64encode(path.read_bytes()).decode() if path.is_file() else None

    return {
        "id": conversation_id,
        "title": title(store, owner, conversation_id),
        "turns": [
            {
                "question": turn.question,
                "transcript": turn.transcript,
                "read_as": turn.read_as,
                "answer": turn.answer,
                "state": turn.state,
                "error": turn.error,
                "timings_ms": turn.timings_ms,
                "asked_at": turn.created_at.isoformat() + "Z" if turn.created_at else None,
                "photos": [
                    {"name": p.name, "alt": alt, "data": inline(p)} for p, alt in turn.photos
                ],
                "audio": {"name": turn.audio.name, "data": inline(turn.audio)}
                if turn.audio
                else None,
            }
            for turn in turns(store, owner, conversation_id)
        ],
    }


def export_json_text(store: Store, owner: str, conversation_id: str) -> str:
    return json.dumps(export_json(store, owner, conversation_id), ensure_ascii=False, indent=1)


def _owned(session, owner: str, conversation_id: str) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.owner != owner:
        raise NotFound(f"no conversation {conversation_id!r}")
    return conversation
