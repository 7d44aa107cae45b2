"""Opening the store: the database by URL, its schema checked and brought up to date.

`open_store()` with no URL opens SQLite at <data folder>/lunettes.db (WAL, so readers never
wait for a writer; foreign keys on; writers wait up to BUSY_TIMEOUT_MS for each other).
A PostgreSQL URL (postgresql://user@host/db) is opened with psycopg. Either way the schema
version is checked at start: an empty database is created, an older schema is migrated
(Alembic, migrations/versions), and a file that is not a Lunettes database, or one made by a
newer Lunettes, is refused with a clear StoreError before anything is written.
"""

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import sessionmaker

from app.data_dir import default_data_dir

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another (several tabs at once)
DATABASE_FILE = "lunettes.db"


class StoreError(Exception):
    """The store cannot be used: the message says why and what to do."""


@dataclass
class Store:
    engine: Engine
    data_dir: Path  # photos and recordings live under data_dir / "media"
    sessions: sessionmaker

    @contextmanager
    def session(self):
        """One transaction: committed at the end of the block, rolled back on an error."""
        with self.sessions.begin() as session:
            yield session

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __deepcopy__(self, memo) -> "Store":
        """A store is a shared handle: a copy of what holds it (gr.State deep-copies each new
        session's WebSession) shares it."""
        return self


def open_store(url: str | None = None, data_dir: Path | None = None) -> Store:
    """The store at `url` (default: SQLite in the data folder), ready to use."""
    data_dir = Path(data_dir or default_data_dir())
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{data_dir / DATABASE_FILE}"
    elif url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = _engine(url)
    try:
        migrate(engine)
    except (DatabaseError, OperationalError) as error:
        engine.dispose()
        raise StoreError(f"cannot open the database {_shown(engine)}: {_reason(error)}") from None
    except StoreError:
        engine.dispose()
        raise
    return Store(engine, data_dir, sessionmaker(engine, expire_on_commit=False))


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def pragmas(connection: sqlite3.Connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(
            "PRAGMA synchronous=NORMAL"
        )  # in WAL: a killed process loses nothing committed
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


def migrate(engine: Engine, revision: str = "head") -> None:
    """Check the schema version and apply the migrations up to `revision`."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with engine.begin() as connection:
        tables = set(inspect(connection).get_table_names())
        if tables and "alembic_version" not in tables:
            raise StoreError(
                f"the database {_shown(engine)} is not a Lunettes database: it holds other "
                f"tables ({', '.join(sorted(tables)[:5])}); give another --database or data folder"
            )
        if "alembic_version" in tables:
            found = {
                row[0]
                for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            }
            if found - known:
                raise StoreError(
                    f"the database {_shown(engine)} has schema {', '.join(sorted(found))}, made "
                    f"by a newer Lunettes; this one knows up to {max(known)}: upgrade Lunettes"
                )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def schema_version(store: Store) -> str | None:
    with store.engine.connect() as connection:
        if "alembic_version" not in inspect(connection).get_table_names():
            return None
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _shown(engine: Engine) -> str:
    return (
        engine.url.database
        if engine.url.get_backend_name() == "sqlite"
        else engine.url.render_as_string(hide_password=True)
    )


def _reason(error: Exception) -> str:
    text = str(getattr(error, "orig", error)).strip().splitlines()[0]
    if "file is not a database" in text:
        return "the file is not a database (is it another program's file?)"
    return text
