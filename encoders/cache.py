"""Where converted weights are cached, and how a cache entry is written safely."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def default_cache_dir() -> Path:
    """$LUNETTES_CACHE, else $XDG_CACHE_HOME/lunettes, else ~/.cache/lunettes."""
    if explicit := os.environ.get("LUNETTES_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lunettes"


def cached_dir(path: Path, build: Callable[[Path], None]) -> Path:
    """Return `path`, first building it with `build(tmp_dir)` if absent.

    The build writes into a temporary sibling that is renamed into place only when complete,
    so an interrupted conversion never leaves a half-written cache entry behind.
    """
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=path.name + ".", suffix=".partial", dir=path.parent))
    try:
        build(staging)
        staging.rename(path)
    except OSError:
        if not path.is_dir():  # a concurrent build may have won the rename: theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
