"""What Lunettes keeps for people: conversations, their turns and files, and moments to recall.

One SQL database behind SQLAlchemy: SQLite in the data folder by default, PostgreSQL by URL
(`--database postgresql://...`) so that several servers share one store. Its schema moves
forward with Alembic migrations (migrations/), checked and applied when the store opens.
Photos and recordings are files in the data folder, named in the database.

Every row belongs to an owner: the browser that made it (a long-lived random cookie), the
user logged in with --auth, or this machine's own user for the command line. Nothing here
returns another owner's rows.
"""
