"""The tables: one per concept (conversation, turn, media file, moment).

Times are UTC. An owner is a short string: "browser:<random hex>", "user:<name>" or "local"
(the command line). Text search over moments is added by the migration for each database
(SQLite FTS5, PostgreSQL tsvector), so it is not declared here.
"""

from datetime import UTC, datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OWNER_CHARS = 80  # "browser:" + 32 hex digits, "user:" + a login name


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: SQLite and PostgreSQL alike


class Base(DeclarativeBase):
    pass


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random hex
    owner: Mapped[str] = mapped_column(String(OWNER_CHARS), index=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, index=True)


class TurnRow(Base):
    """One question and its answer, stored as soon as it is asked and as the answer grows."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)  # 0, 1, ... in the conversation
    question: Mapped[str] = mapped_column(Text, default="")  # what was typed
    transcript: Mapped[str | None] = mapped_column(Text)  # Whisper's, for a spoken question
    read_as: Mapped[str | None] = mapped_column(Text)  # the words the language model read
    answer: Mapped[str] = mapped_column(Text, default="")
    # waiting, answering, done, stopped (cut off by Stop), failed, cut off (the server ended)
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    timings_ms: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)


class MediaFile(Base):
    """A photo or recording kept in the data folder, for a turn or a moment."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int | None] = mapped_column(
        ForeignKey("turns.id", ondelete="CASCADE"), index=True
    )
    moment_id: Mapped[int | None] = mapped_column(
        ForeignKey("moments.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # "photo" or "audio"
    path: Mapped[str] = mapped_column(String(300))  # relative to the data folder
    label: Mapped[str] = mapped_column(String(300), default="")  # alt text, file name


class Moment(Base):
    """Something the person asked to remember: a note, what was seen and heard, and when."""

    __tablename__ = "moments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(OWNER_CHARS), index=True)
    note: Mapped[str] = mapped_column(Text, default="")  # "my car is on level 3, row F"
    transcript: Mapped[str] = mapped_column(Text, default="")  # of the clip, if any
    seen: Mapped[str] = mapped_column(Text, default="")  # the vision tower's label words
    text_read: Mapped[str] = mapped_column(Text, default="")  # text read in the photos (OCR)
    created_at: Mapped[datetime] = mapped_column(default=now, index=True)
