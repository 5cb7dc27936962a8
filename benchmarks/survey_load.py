"""Server-side cost of rating: concurrent raters each rating a whole study, through the rater page's handler.

    python benchmarks/survey_load.py [--raters 16] [--images 10] [--size 256] [--database-url URL]

Creates a throw-away study (bicubic, hidden reference, nearest-neighbour anchor; ``--size``² px images) in a
temporary data directory, starts ``--raters`` raters, then runs one thread per rater calling
``survey.ui.rate.rater_answer`` as a click does (store the score, find the next stimulus) and reading the next PNG, as
its download does. Prints clicks per second over all threads, the median and 95th-percentile time of one click, and
the CPU time per click. HTTP is not included (``survey_http_load.py`` measures it). SQLite by default;
``--database-url`` for another database (its survey tables are dropped first).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from survey.creation import create_study  # noqa: E402
from survey.db import Base, Store  # noqa: E402
from survey.raters import start_rater  # noqa: E402
from survey.store import make_engine, open_store  # noqa: E402
from survey.ui.rate import rater_answer  # noqa: E402


def fresh_store(tmp: Path, images: int, size: int, database_url: str | None) -> tuple[Path, Store]:
    """``images`` random ``size``² PNGs in ``tmp/images``, and a new survey store in ``tmp/data`` (on another
    database, its survey tables are dropped first)."""
    folder = tmp / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(images):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    if database_url:
        Base.metadata.drop_all(make_engine(database_url))
    return folder, open_store(tmp / "data", database_url=database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=16, help="concurrent raters (one thread each)")
    parser.add_argument("--images", type=int, default=10, help="source images; 3 stimuli each")
    parser.add_argument("--size", type=int, default=256, help="side of the square images in pixels")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder, store = fresh_store(Path(tmp), args.images, args.size, args.database_url)
        study = create_study(store, "load", folder, ["bicubic"], reference=True, anchors=True)
        states = [start_rater(store, study.public_id) for _ in range(args.raters)]
        times: list[float] = []

        def rate(token: str, stimulus: str) -> None:
            while stimulus:
                start = time.perf_counter()
                stimulus = rater_answer(store, study.public_id, token, stimulus, 3).item
                if stimulus:
                    store.png_path(study.public_id, stimulus).read_bytes()
                times.append(time.perf_counter() - start)

        threads = [threading.Thread(target=rate, args=(s.token, s.stimulus)) for s in states]
        start, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        store.engine.dispose()

    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"{store.engine.dialect.name}: {args.raters} raters × {args.images * 3} stimuli of {args.size}² px")
    print(f"{len(times) / elapsed:.0f} clicks/s; per click median {statistics.median(times) * 1e3:.1f} ms, 95th "
          f"percentile {p95 * 1e3:.1f} ms, CPU {cpu * 1e3 / len(times):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
