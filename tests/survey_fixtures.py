"""Helpers for the survey tests: simulated raters, tiny image folders and stores.

Plain functions, not fixtures: tests call them with arguments of their own, so they import them by hand
(``from tests.survey_fixtures import …``). The fixtures built on them live in ``conftest.py`` (``store``, a fresh
:func:`tmp_store`); a test calls :func:`tmp_store` itself only for a store it opens mid-test."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sqlalchemy import update

from survey.db import MAX_SCORE, MIN_SCORE, Base, Choice, Rating, Store
from survey.store import make_engine, open_store
from survey.ui.rater_requests import OPAQUE_ID

TEST_DATABASE_ENV = "SR_LAB_TEST_DATABASE_URL"
#: A random id as the survey hands them out (``survey.ui.rate.OPAQUE_ID``), standing alone.
RANDOM_ID = re.compile(rf"(?<![A-Za-z0-9_-]){OPAQUE_ID.pattern}(?![A-Za-z0-9_-])")

#: A response time a person takes to judge a photo, in milliseconds (well above the too-fast threshold).
HUMAN_RESPONSE_MS = 3000

#: True quality of each condition on the 1–5 scale, in the spirit of SRGAN's Set14 study.
TRUE_QUALITY = {"nearest": 1.3, "bicubic": 1.8, "edsr": 3.0, "edsr_srgan": 3.7, "reference": 4.3}


def simulate_ratings(
    rng: np.random.Generator,
    true_quality: Mapping[str, float] = TRUE_QUALITY,
    n_raters: int = 20,
    n_images: int = 10,
    bias_sd: float = 0.3,
    image_sd: float = 0.3,
    noise_sd: float = 0.6,
) -> pd.DataFrame:
    """Every rater scores every image × method once: round(quality + image effect + rater bias + noise), 1–5."""
    methods = list(true_quality)
    rater, image, method = np.meshgrid(np.arange(n_raters), np.arange(n_images), np.arange(len(methods)), indexing="ij")
    rater, image, method = rater.ravel(), image.ravel(), method.ravel()
    latent = (
        np.array(list(true_quality.values()))[method]
        + rng.normal(0, image_sd, n_images)[image]
        + rng.normal(0, bias_sd, n_raters)[rater]
        + rng.normal(0, noise_sd, rater.size)
    )
    score = np.clip(np.rint(latent), MIN_SCORE, MAX_SCORE).astype(int)
    return pd.DataFrame(
        {"rater": rater, "image": [f"img{i}" for i in image], "method": np.array(methods)[method], "score": score}
    )


def random_clicker(rng: np.random.Generator, like: pd.DataFrame, rater: int) -> pd.DataFrame:
    """A rater who scores the same presentations as one rater of ``like``, uniformly at random."""
    mine = like[like["rater"] == like["rater"].iloc[0]].copy()
    mine["rater"] = rater
    mine["score"] = rng.integers(MIN_SCORE, MAX_SCORE + 1, len(mine))
    return mine


def image_folder(folder: Path, n_images: int = 3, size: tuple[int, int] = (32, 36), seed: int = 0) -> Path:
    """``n_images`` random RGB PNGs of ``size`` (height, width) pixels in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"photo{i}.png")
    return folder


def tmp_store(tmp_path: Path) -> Store:
    """A fresh store in ``tmp_path/data``: SQLite, or the database at ``$SR_LAB_TEST_DATABASE_URL`` emptied first
    (e.g. ``postgresql+psycopg://user:password@localhost/sr_lab_test`` to run the survey tests on PostgreSQL)."""
    url = os.environ.get(TEST_DATABASE_ENV)
    if url:
        engine = make_engine(url)
        Base.metadata.drop_all(engine)
        engine.dispose()
    return open_store(tmp_path / "data", database_url=url or f"sqlite:///{tmp_path / 'data' / 'survey.db'}")


def set_response_times(store: Store, ms: int = HUMAN_RESPONSE_MS, raters: Collection[int] | None = None) -> None:
    """Set the response time of every stored answer (score or choice) of ``raters`` (rater ids; every rater when
    ``None``) to ``ms`` milliseconds. The server measures it, so simulated raters answer in a few milliseconds, which
    the too-fast rule flags."""
    with store.session() as session, session.begin():
        for table in (Rating, Choice):
            query = update(table).values(response_ms=ms)
            if raters is not None:
                query = query.where(table.rater_id.in_(raters))
            session.execute(query)


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file's bytes, in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def blank_random_ids(text: str) -> str:
    """``text`` with every random id replaced by ``<id>``, for the blinding checks.

    Random characters spell a method name now and then (about one id in 50,000 holds "EDsR" in some case), which
    would fail a search for method names by chance; the ids themselves are checked to be opaque elsewhere.
    """
    return RANDOM_ID.sub("<id>", text)
