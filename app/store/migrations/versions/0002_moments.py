"""Moments to remember, their files, and full-text search over them.

SQLite: an FTS5 table over the moments (Porter stemming: "parked" finds "parking"), kept in
step by triggers. PostgreSQL: a generated tsvector column with a GIN index.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

SEARCHED = ("note", "transcript", "seen", "text_read")  # the moment's columns searched


def upgrade() -> None:
    op.create_table(
        "moments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner", sa.String(80), nullable=False, index=True),
        *(sa.Column(name, sa.Text(), nullable=False) for name in SEARCHED),
        sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
    )
    with op.batch_alter_table("media") as media:
        media.add_column(sa.Column("moment_id", sa.Integer(), nullable=True))
        media.create_foreign_key(
            "fk_media_moment", "moments", ["moment_id"], ["id"], ondelete="CASCADE"
        )
        media.create_index("ix_media_moment_id", ["moment_id"])
    if op.get_bind().dialect.name == "postgresql":
        joined = " || ' ' || ".join(f"coalesce({name}, '')" for name in SEARCHED)
        op.execute(
            "ALTER TABLE moments ADD COLUMN search tsvector "
            f"GENERATED ALWAYS AS (to_tsvector('english', {joined})) STORED"
        )
        op.execute("CREATE INDEX ix_moments_search ON moments USING gin (search)")
        return
    columns = ", ".join(SEARCHED)
    new = ", ".join(f"new.{name}" for name in SEARCHED)
    old = ", ".join(f"old.{name}" for name in SEARCHED)
    op.execute(
        f"CREATE VIRTUAL TABLE moments_search USING fts5({columns}, content='moments', "
        "content_rowid='id', tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER moments_added AFTER INSERT ON moments BEGIN "
        f"INSERT INTO moments_search(rowid, {columns}) VALUES (new.id, {new}); END"
    )
    op.execute(
        "CREATE TRIGGER moments_removed AFTER DELETE ON moments BEGIN "
        f"INSERT INTO moments_search(moments_search, rowid, {columns}) "
        f"VALUES ('delete', old.id, {old}); END"
    )
    op.execute(
        "CREATE TRIGGER moments_changed AFTER UPDATE ON moments BEGIN "
        f"INSERT INTO moments_search(moments_search, rowid, {columns}) "
        f"VALUES ('delete', old.id, {old}); "
        f"INSERT INTO moments_search(rowid, {columns}) VALUES (new.id, {new}); END"
    )
