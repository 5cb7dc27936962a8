"""Shared comparisons: a comparison's images, labels and table stored under an opaque id in the data folder.

``<data dir>/comparisons/<id>/`` holds the PNG files the viewer shows and ``comparison.json`` (labels, scales of the
difference images and SSIM maps, table, size, mode, time). The app serves the folder as static files and reopens a
comparison read-only at ``/?compare=<id>``, also after a restart; Gradio's hourly cache clean-up never touches it.

The id is derived from the content (a hash of the images, labels and table), so sharing one comparison again stores
nothing new and gives the same link. The store has a :class:`Quota` (total bytes and number of comparisons); a
comparison that would exceed it is refused with :class:`QuotaError`, and nothing stored is ever evicted. Manage them
with ``python -m sr_app.ui.share list|delete`` (:mod:`sr_app.ui.share.__main__`).

The data folder is the app's ``--data-dir`` (the survey's), else ``$SR_LAB_DATA``, else ``~/.local/share/sr-lab``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sr_app.errors import UserError
from sr_app.ui.viewer import Scale, View

#: The page address parameter that opens a shared comparison: ``/?compare=<id>``.
SHARE_PARAM = "compare"
FOLDER = "comparisons"
META_FILE = "comparison.json"
#: An id: the first 128 bits of the SHA-256 of the stored content, URL-safe base64 without padding.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
#: One comparison is checked against the quota and written at a time (the app shares from several threads).
STORE_LOCK = threading.Lock()


class ShareError(UserError, ValueError):
    """A shared comparison cannot be found or read; the message says which and why."""


class QuotaError(ShareError):
    """The store is full: the comparison was not stored (and nothing stored was touched)."""


@dataclass(frozen=True)
class Quota:
    """Limits of the share store: the total size of every stored file, in megabytes (10⁶ bytes), and the number of
    comparisons."""

    megabytes: float = 1000
    count: int = 500


DEFAULT_QUOTA = Quota()


@dataclass(frozen=True)
class Shared:
    """A stored comparison: its id, when it was shared (UTC), the name of the upload, the mode, the images' size
    (height, width) in pixels, its views (labels and PNG files) and its table of times and scores."""

    id: str
    created: datetime
    stem: str
    mode: str
    size: tuple[int, int]
    views: list[View]
    table: pd.DataFrame


def shared_dir(data_dir: Path) -> Path:
    """The folder of every shared comparison in ``data_dir``."""
    return Path(data_dir) / FOLDER


def content_id(meta: dict, views: Sequence[View]) -> str:
    """The id of a comparison: the first 128 bits of the SHA-256 of its ``meta`` (without the time) and its files."""
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for view in views:
        with view.path.open("rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


def stored_bytes(folder: Path) -> int:
    """The size of every file under ``folder``, in bytes (0 if there is none)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


def save_shared(
    data_dir: Path,
    views: Sequence[View],
    table: pd.DataFrame,
    stem: str,
    mode: str,
    size: tuple[int, int],
    quota: Quota = DEFAULT_QUOTA,
) -> str:
    """Copy ``views`` (and their labels, ``table`` and the rest) into ``data_dir`` under the id of their content;
    returns the id. A comparison stored before is not stored again.

    The folder appears complete or not at all: it is written under a temporary name and then renamed.

    Raises:
        QuotaError: storing it would take the store over ``quota``; nothing is written.
        OSError: a file cannot be read or written (nothing is left behind).
    """
    meta = {
        "stem": stem,
        "mode": mode,
        "size": list(size),
        "views": [
            {"label": view.label, "file": view.path.name, **({"scale": asdict(view.scale)} if view.scale else {})}
            for view in views
        ],
        "table": json.loads(table.to_json(orient="split", index=False)),
    }
    share_id = content_id(meta, views)
    folder = shared_dir(data_dir)
    with STORE_LOCK:
        if (folder / share_id).is_dir():
            return share_id
        check_quota(data_dir, sum(view.path.stat().st_size for view in views), quota)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{share_id}.", dir=folder))
        try:
            for view in views:
                shutil.copyfile(view.path, staging / view.path.name)
            meta["created"] = datetime.now(UTC).isoformat(timespec="seconds")
            (staging / META_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False))
            staging.rename(folder / share_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
    return share_id


def check_quota(data_dir: Path, new_bytes: int, quota: Quota) -> None:
    """:class:`QuotaError` when one more comparison of ``new_bytes`` would take the store over ``quota``."""
    count, used = len(list_ids(data_dir)), stored_bytes(shared_dir(data_dir))
    if count + 1 > quota.count or (used + new_bytes) / 1e6 > quota.megabytes:
        raise QuotaError(
            f"The store of shared comparisons is full ({count} of {quota.count} comparisons, {used / 1e6:.1f} of "
            f"{quota.megabytes:g} MB; this one needs {new_bytes / 1e6:.1f} MB), so this comparison was not shared. "
            "Ask whoever runs the app to delete old ones (python -m sr_app.ui.share list / delete)."
        )


def load_shared(data_dir: Path, share_id: str) -> Shared:
    """The comparison stored as ``share_id`` in ``data_dir``; :class:`ShareError` if there is none."""
    folder = shared_dir(data_dir) / share_id
    if not ID_PATTERN.fullmatch(share_id) or not (folder / META_FILE).is_file():
        raise ShareError(f"There is no shared comparison {share_id!r} here: it was deleted, or the link is incomplete.")
    try:
        meta = json.loads((folder / META_FILE).read_text())
        views = [
            View(view["label"], folder / view["file"], Scale(**view["scale"]) if "scale" in view else None)
            for view in meta["views"]
        ]
        if any(view.path.parent != folder for view in views):
            raise ValueError("a view's file lies outside the comparison's folder")
        table = pd.DataFrame(meta["table"]["data"], columns=meta["table"]["columns"])
        return Shared(
            share_id, datetime.fromisoformat(meta["created"]), meta["stem"], meta["mode"], tuple(meta["size"]), views,
            table,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ShareError(f"{folder / META_FILE} cannot be read: {type(error).__name__}: {error}") from error


def list_ids(data_dir: Path) -> list[str]:
    """The id of every comparison stored in ``data_dir``."""
    folder = shared_dir(data_dir)
    return [path.name for path in folder.iterdir() if ID_PATTERN.fullmatch(path.name)] if folder.is_dir() else []


def list_shared(data_dir: Path) -> list[Shared]:
    """Every readable comparison shared in ``data_dir``, oldest first."""
    shared = (load_shared(data_dir, share_id) for share_id in list_ids(data_dir))
    return sorted(shared, key=lambda comparison: comparison.created)


def delete_shared(data_dir: Path, share_id: str) -> None:
    """Remove the comparison ``share_id`` and its files; :class:`ShareError` if there is none."""
    load_shared(data_dir, share_id)
    shutil.rmtree(shared_dir(data_dir) / share_id)


def share_link(base_url: str, share_id: str) -> str:
    return f"{base_url.rstrip('/')}/?{SHARE_PARAM}={share_id}"
