"""Files and folders the survey creates, readable by their owner only: the data folder, stimulus folders, the SQLite
database and secrets (the admin password). What exists already is left as it is.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO

#: Modes of the folders and files the survey creates (the data folder, stimulus folders, the SQLite database and
#: secrets): readable by their owner only.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: Path) -> Path:
    """Folder ``path``, created (with its missing parents) with mode :data:`PRIVATE_DIR` if it does not exist; an
    existing folder keeps its mode."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def create_private_file(path: Path) -> IO[str]:
    """New file ``path`` with mode :data:`PRIVATE_FILE`, opened for writing text; ``FileExistsError`` if it exists."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "w")


def stored_secret(path: Path) -> tuple[str, bool]:
    """The random secret kept in file ``path`` (created, readable by its owner only, if missing): (secret, created)."""
    if path.is_file():
        return path.read_text().strip(), False
    secret = secrets.token_urlsafe(16)
    private_dir(path.parent)
    with create_private_file(path) as file:
        file.write(secret + "\n")
    return secret, True
