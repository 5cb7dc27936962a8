"""Storage faults while raters rate: a database locked by another writer, and a full disk.

Both must give the rater a clear message (not a traceback, not a silent new start; the rater page answers 503) and
lose nothing already stored. These are SQLite faults, so the tests use SQLite whatever ``$SR_LAB_TEST_DATABASE_URL``
says. A full disk is simulated with ``PRAGMA max_page_count`` (the database cannot grow past its current size),
which makes SQLite fail exactly as on a full file system (SQLITE_FULL, "database or disk is full").
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from survey import store as survey_store
from survey.answers import submit_rating
from survey.creation import create_study
from survey.db import Rating, Store
from survey.errors import STORAGE_ERROR, StorageError
from survey.raters import Progress, start_rater
from survey.store import DATABASE_FILE, open_store
from survey.studies import StudySummary
from survey.ui.rate import app_kwargs, rater_start
from tests.survey_fixtures import image_folder

BUSY_TIMEOUT_MS = 300


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A SQLite store whose writers give up after :data:`BUSY_TIMEOUT_MS` instead of the app's 15 s."""
    monkeypatch.setattr(survey_store, "SQLITE_BUSY_TIMEOUT_MS", BUSY_TIMEOUT_MS)
    store = open_store(tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'data' / DATABASE_FILE}")
    yield store
    store.engine.dispose()


@pytest.fixture()
def study(store: Store, tmp_path: Path) -> StudySummary:
    """3 images × (bicubic, reference, nearest): 9 stimuli."""
    return create_study(store, "faults", image_folder(tmp_path / "hr"), ["bicubic"], reference=True, anchors=True)


def stored(store: Store) -> list[tuple[int, int, int]]:
    """Every stored rating as (rater id, stimulus id, score), in a stable order."""
    with store.session() as session:
        rows = session.execute(select(Rating.rater_id, Rating.stimulus_id, Rating.score).order_by(Rating.id))
        return [tuple(row) for row in rows]


def rate(store: Store, state: Progress, n: int) -> Progress:
    """``n`` ratings of 4 by the rater of ``state``."""
    for _ in range(n):
        state = submit_rating(store, state.study, state.token, state.stimulus or "", 4)
    return state


def integrity(store: Store) -> str:
    with sqlite3.connect(store.data_dir / DATABASE_FILE) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_writer_holding_the_lock_beyond_the_busy_timeout_gives_a_clear_error_and_loses_nothing(
    store: Store, study: StudySummary
) -> None:
    state = rate(store, start_rater(store, study.public_id), 3)
    before = stored(store)
    other = sqlite3.connect(store.data_dir / DATABASE_FILE, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer (a backup, an admin's tool) holds the write lock
    try:
        start = time.perf_counter()
        with pytest.raises(StorageError, match="busy or out of space"):
            submit_rating(store, study.public_id, state.token, state.stimulus or "", 5)
        assert time.perf_counter() - start >= BUSY_TIMEOUT_MS / 1000  # it waited before giving up
        page = TestClient(FastAPI(**app_kwargs(store)))
        answer = {"token": state.token, "item": state.stimulus, "answer": 5}
        response = page.post(f"/rate/{study.public_id}/answer", json=answer)
        assert response.status_code == 503 and "Everything you rated before is kept" in response.json()["error"]
        with pytest.raises(StorageError, match="busy or out of space"):  # a reload: an error, not a fresh rater
            rater_start(store, study.public_id, state.token)
    finally:
        other.rollback()
        other.close()
    assert stored(store) == before
    after = submit_rating(store, study.public_id, state.token, state.stimulus or "", 5)  # the retry is stored
    assert after.done == 4 and stored(store)[:3] == before and stored(store)[3][2] == 5
    assert integrity(store) == "ok"


def test_a_writer_holding_the_lock_briefly_only_delays_the_rating(store: Store, study: StudySummary) -> None:
    state = start_rater(store, study.public_id)
    other = sqlite3.connect(store.data_dir / DATABASE_FILE, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(BUSY_TIMEOUT_MS / 3000, other.rollback)
    release.start()
    try:
        assert submit_rating(store, study.public_id, state.token, state.stimulus or "", 2).done == 1
    finally:
        release.join()
        other.close()


@contextlib.contextmanager
def disk_full(store: Store) -> Iterator[None]:
    """Inside the block the database file cannot grow beyond its current number of pages, as on a full disk."""

    def no_growth(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(store.engine, "connect", no_growth)
    store.engine.dispose()  # the pooled connections were opened without the limit
    try:
        yield
    finally:
        event.remove(store.engine, "connect", no_growth)
        store.engine.dispose()


def test_a_full_disk_gives_a_clear_error_and_loses_nothing(store: Store, study: StudySummary) -> None:
    rate(store, start_rater(store, study.public_id), 9)
    failure, acknowledged = None, stored(store)
    with disk_full(store):
        for _ in range(100):  # new raters and their ratings fill the free space left in the last pages
            try:
                state = start_rater(store, study.public_id)
                while not state.finished:
                    state = submit_rating(store, study.public_id, state.token, state.stimulus or "", 3)
                    acknowledged = stored(store)
            except StorageError as error:
                failure = error
                break
        assert failure is not None, "the database never filled up"
        assert str(failure) == STORAGE_ERROR and "database or disk is full" in str(failure.__cause__)
        assert stored(store) == acknowledged and len(acknowledged) > 9
        assert integrity(store) == "ok"
    rate(store, start_rater(store, study.public_id), 9)  # space freed: raters go on, nothing was lost
    assert stored(store)[: len(acknowledged)] == acknowledged and len(stored(store)) == len(acknowledged) + 9
