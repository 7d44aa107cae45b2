"""Photos and recordings kept in the data folder, named in the database by relative path.

A file is written whole or not at all (a temporary name, then a rename), so a crash never
leaves half a photo under a stored name. A full disk raises StoreFull, whose message says so:
the caller keeps answering and tells the person that this one was not kept.
"""

import errno
import os
import secrets
import shutil
from pathlib import Path

MEDIA = "media"  # under the data folder


class StoreFull(OSError):
    """The data folder's disk is full (or the folder cannot be written)."""


def keep_file(data_dir: Path, source: Path, kind: str) -> str:
    """Copy `source` into the data folder; returns its path relative to data_dir."""
    relative = Path(MEDIA) / secrets.token_hex(2) / f"{secrets.token_hex(12)}-{kind}{source.suffix}"
    target = data_dir / relative
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise StoreFull(
                error.errno, f"cannot keep this {kind} in {data_dir}: {os.strerror(error.errno)}"
            ) from None
        raise
    return relative.as_posix()


def forget_file(data_dir: Path, relative: str) -> None:
    path = (data_dir / relative).resolve()
    if path.is_relative_to((data_dir / MEDIA).resolve()):  # never outside the media folder
        path.unlink(missing_ok=True)
