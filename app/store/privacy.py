"""A person's control over what is kept: forget everything, keep only so many days, export all.

(Forgetting one moment or one conversation lives with them: moments.forget,
conversations.delete_conversation.)
"""

import json
from datetime import timedelta

from sqlalchemy import delete, select

from app.store import conversations, moments
from app.store.database import Store
from app.store.files import forget_file
from app.store.schema import Conversation, MediaFile, Moment, TurnRow, now


def forget_everything(store: Store, owner: str) -> tuple[int, int]:
    """Every moment and conversation of the owner, with their files: (moments, conversations)."""
    with store.session() as session:
        moment_ids = session.scalars(select(Moment.id).where(Moment.owner == owner)).all()
        conversation_ids = session.scalars(
            select(Conversation.id).where(Conversation.owner == owner)
        ).all()
        turn_ids = select(TurnRow.id).where(TurnRow.conversation_id.in_(conversation_ids))
        owned = MediaFile.moment_id.in_(moment_ids) | MediaFile.turn_id.in_(turn_ids)
        files = session.scalars(select(MediaFile.path).where(owned)).all()
        session.execute(delete(MediaFile).where(owned))
        session.execute(delete(TurnRow).where(TurnRow.conversation_id.in_(conversation_ids)))
        session.execute(delete(Conversation).where(Conversation.id.in_(conversation_ids)))
        session.execute(delete(Moment).where(Moment.id.in_(moment_ids)))
    for path in files:
        forget_file(store.data_dir, path)
    return len(moment_ids), len(conversation_ids)


def forget_older_than(store: Store, days: float) -> int:
    """Retention, for every owner: moments made and conversations last used more than `days`
    ago are forgotten with their files; how many."""
    if days <= 0:
        raise ValueError(f"keep days must be positive, got {days}")
    cutoff = now() - timedelta(days=days)
    with store.session() as session:
        old_moments = session.execute(
            select(Moment.owner, Moment.id).where(Moment.created_at < cutoff)
        ).all()
        old_conversations = session.execute(
            select(Conversation.owner, Conversation.id).where(Conversation.updated_at < cutoff)
        ).all()
    forgotten = sum(moments.forget(store, owner, moment_id) for owner, moment_id in old_moments)
    for owner, conversation_id in old_conversations:
        conversations.delete_conversation(store, owner, conversation_id)
    return forgotten + len(old_conversations)


def export_everything(store: Store, owner: str) -> str:
    """JSON of every conversation (with its media inlined) and every moment of the owner."""
    return json.dumps(
        {
            "conversations": [
                conversations.export_json(store, owner, summary.id)
                for summary in conversations.listed(store, owner, limit=1_000_000)
            ],
            "moments": [
                {
                    "id": m.id,
                    "note": m.note,
                    "transcript": m.transcript,
                    "seen": m.seen,
                    "text_read": m.text_read,
                    "at": m.created_at.isoformat() + "Z",
                    "photos": [p.name for p in m.photos],
                    "audio": m.audio.name if m.audio else None,
                }
                for m in moments.listed(store, owner, limit=1_000_000)
            ],
        },
        ensure_ascii=False,
        indent=1,
    )
