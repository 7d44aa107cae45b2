"""Where Lunettes keeps what it makes for a person and must not lose: the HTTPS certificates.

$LUNETTES_DATA, else $XDG_DATA_HOME/lunettes, else ~/.local/share/lunettes. Unlike the cache
(converted weights, remade at will), nothing here can be remade without cost: a phone that
trusted the local certificate authority would have to trust a new one.
"""

import os
from pathlib import Path


def default_data_dir() -> Path:
    if explicit := os.environ.get("LUNETTES_DATA"):
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "lunettes"
