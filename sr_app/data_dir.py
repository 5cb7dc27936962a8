"""Where the lab keeps its data: the survey's database and stimuli, and shared comparisons."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the data folder.
DATA_DIR_ENV = "SR_LAB_DATA"
DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "sr-lab"


def data_dir_from_env(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$SR_LAB_DATA``, else ``~/.local/share/sr-lab``."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()
