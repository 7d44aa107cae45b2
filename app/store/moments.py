"""Moments: what a person asked to remember, found again by full-text search.

A moment holds the person's note ("my car is on level 3, row F"), the transcript of what they
said, what the vision tower saw (label words), text read in the photo, the photos and clip
themselves, and the time. `search` finds an owner's moments by the words of a question:
SQLite's FTS5 (Porter stemming, BM25 ranking) or PostgreSQL's tsvector (ts_rank), built by
migration 0002. Only content words are searched ("where did I leave my umbrella" looks for
"leave", "umbrella"), any of them matching, the best ranked first.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select, text

from app.store.database import Store
from app.store.files import forget_file, keep_file
from app.store.schema import MediaFile, Moment

FUNCTION_WORDS = frozenset(
    """a about after again all also am an and any are as at be been before but by can could did do
    does doing for from had has have how i i'd i'm i've if in into is it it's its just me my
    myself now of on or our please remember remind so some tell than that the their them
    then there these they this those to today told up us was we were what when where which
    while who whom why will with would you your yesterday ago what's where's who's how's
    when's that's there's""".split()  # noqa: SIM905
)
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass
class FoundMoment:
    id: int
    note: str
    transcript: str
    seen: str
    text_read: str
    created_at: datetime
    photos: list[Path] = field(default_factory=list)
    audio: Path | None = None


def search_words(question: str) -> list[str]:
    """The content words of a question, lower-cased, in order, each once."""
    words = [w.lower() for w in WORD.findall(question)]
    return list(dict.fromkeys(w for w in words if w not in FUNCTION_WORDS and len(w) > 1))


def remember(
    store: Store,
    owner: str,
    note: str = "",
    photos: list[Path] = (),
    audio: Path | None = None,
    transcript: str = "",
    seen: str = "",
    text_read: str = "",
) -> int:
    """Keep a moment (its files copied into the data folder); its id. Raises ValueError when
    there is nothing to keep, StoreFull when the disk is full."""
    if not (note.strip() or transcript.strip() or photos or audio is not None):
        raise ValueError("nothing to remember: say or type what, or show a photo")
    kept = [(keep_file(store.data_dir, p, "photo"), p.name, "photo") for p in photos]
    if audio is not None:
        kept.append((keep_file(store.data_dir, audio, "audio"), audio.name, "audio"))
    with store.session() as session:
        moment = Moment(
            owner=owner, note=note.strip(), transcript=transcript.strip(), seen=seen.strip(),
            text_read=text_read.strip(),
        )  # fmt: skip
        session.add(moment)
        session.flush()
        for path, label, kind in kept:
            session.add(MediaFile(moment_id=moment.id, kind=kind, path=path, label=label))
        return moment.id


def search(store: Store, owner: str, question: str, limit: int = 3) -> list[FoundMoment]:
    """The owner's moments that share content words with the question, best first."""
    words = search_words(question)
    if not words:
        return []
    with store.session() as session:
        if store.engine.dialect.name == "postgresql":
            query = text(
                "SELECT id FROM moments WHERE owner = :owner AND search @@ to_tsquery('english', :q) "
                "ORDER BY ts_rank(search, to_tsquery('english', :q)) DESC, created_at DESC LIMIT :n"
            )
            terms = " | ".join(re.sub(r"[^\w]", "", w) for w in words)
        else:
            query = text(
                "SELECT m.id FROM moments_search JOIN moments m ON m.id = moments_search.rowid "
                "WHERE moments_search MATCH :q AND m.owner = :owner "
                "ORDER BY bm25(moments_search), m.created_at DESC LIMIT :n"
            )
            terms = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
        ids = [row[0] for row in session.execute(query, {"owner": owner, "q": terms, "n": limit})]
        return _found(store, session, ids)


def listed(store: Store, owner: str, limit: int = 1000) -> list[FoundMoment]:
    """The owner's moments, newest first."""
    with store.session() as session:
        ids = session.scalars(
            select(Moment.id)
            .where(Moment.owner == owner)
            .order_by(Moment.created_at.desc(), Moment.id.desc())
            .limit(limit)
        ).all()
        return _found(store, session, list(ids))


def forget(store: Store, owner: str, moment_id: int) -> bool:
    """Forget one moment and its files; False when the owner has no such moment."""
    with store.session() as session:
        moment = session.get(Moment, moment_id)
        if moment is None or moment.owner != owner:
            return False
        files = session.scalars(
            select(MediaFile.path).where(MediaFile.moment_id == moment_id)
        ).all()
        session.execute(delete(MediaFile).where(MediaFile.moment_id == moment_id))
        session.delete(moment)
    for path in files:
        forget_file(store.data_dir, path)
    return True


def _found(store: Store, session, ids: list[int]) -> list[FoundMoment]:
    if not ids:
        return []
    rows = {m.id: m for m in session.scalars(select(Moment).where(Moment.id.in_(ids)))}
    media = session.scalars(
        select(MediaFile).where(MediaFile.moment_id.in_(ids)).order_by(MediaFile.id)
    ).all()
    found = []
    for moment_id in ids:
        row = rows[moment_id]
        moment = FoundMoment(
            row.id, row.note, row.transcript, row.seen, row.text_read, row.created_at
        )
        for item in media:
            if item.moment_id == moment_id:
                if item.kind == "photo":
                    moment.photos.append(store.data_dir / item.path)
                else:
                    moment.audio = store.data_dir / item.path
        found.append(moment)
    return found
