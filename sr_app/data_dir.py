"""Where the lab keeps its data (the survey's database and stimuli, shared comparisons), and the address the app
recorded there when it last started, for the links the commands print."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the data folder.
DATA_DIR_ENV = "SR_LAB_DATA"
DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "sr-lab"


def data_dir_from_env(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$SR_LAB_DATA``, else ``~/.local/share/sr-lab``."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


#: The app's address when nothing was recorded: ``python app.py`` with its defaults.
DEFAULT_BASE_URL = "http://127.0.0.1:7860"
#: File in the data folder where ``python app.py`` records the address it serves on when it starts.
APP_URL_FILE = "app-url.txt"


def remember_app_url(data_dir: Path, url: str) -> None:
    """Record the address the app serves on, for the rater and share links the commands print."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / APP_URL_FILE).write_text(url + "\n")


def app_url(data_dir: Path) -> str:
    """The address the app recorded in ``data_dir`` when it last started, else :data:`DEFAULT_BASE_URL`."""
    path = data_dir / APP_URL_FILE
    return path.read_text().strip() if path.is_file() else DEFAULT_BASE_URL
