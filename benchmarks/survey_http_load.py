"""Concurrent raters through the live app's HTTP API, optionally with a ``kill -9`` of the server midway.

    python benchmarks/survey_http_load.py [--raters 50] [--images 10] [--size 64] [--kill-after 0]
                                          [--database-url URL] [--timeout 600]

Creates a study of ``--images`` random ``--size``² px images × (bicubic, edsr, hidden reference, nearest
anchor) = 4 stimuli per image in a temporary data folder, starts ``python app.py`` on 127.0.0.1 as a
subprocess, then runs one thread per rater, each with its own client (its own session): ``/survey_start``,
then ``/survey_rate`` with a random score until the study is done, as a browser does. ``--client gradio`` (the
default) is ``gradio_client.Client``; ``--client http`` is a plain ``httpx`` client of Gradio's REST API
(``POST /gradio_api/call/<api>``, then its server-sent events), far lighter on the shared CPU. ``--think S``
makes each rater pause for a random time (exponential, mean S seconds; untimed) before each score, as a person
looking at the photo does; 0 (the default) is a closed loop, every rater clicking again the moment the next
stimulus arrives. The timed step is one ``/survey_rate`` call: store the score, get the next stimulus and
download its PNG (each download is then checked to be a complete PNG of the study's size). Prints ratings per
second over all raters and the 50th/95th/99th percentile latency of that step; the client threads run on the
same machine as the server.

With ``--kill-after N`` the server is killed with SIGKILL once N ratings are acknowledged, the database is
checked while it is down (every rating acknowledged so far present, ``PRAGMA integrity_check``), and the
server is restarted; each rater then reconnects with a new client, calls ``/survey_start`` with their token
and must resume where they were: at the stimulus they were rating, or at the next one if their unanswered
rating had been stored. At the end every acknowledged rating must be in the database exactly once, with its
score. Exits 1 if any check fails. Every loop is bounded: a rater gives up after ``--timeout`` seconds.

SQLite in the data folder by default; ``--database-url`` points the app at another database (its survey
tables are dropped first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from gradio_client import Client  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import select  # noqa: E402

from benchmarks.live_app import LiveApp  # noqa: E402
from benchmarks.survey_load import fresh_store  # noqa: E402
from survey.db import (  # noqa: E402
    DATABASE_FILE,
    DATABASE_URL_ENV,
    MAX_SCORE,
    MIN_SCORE,
    Rater,
    Rating,
    Stimulus,
    Store,
)
from survey.studies import create_study  # noqa: E402

#: The acknowledged ratings: (rater token, stimulus id) -> score.
Acks = dict[tuple[str, str], int]
#: How many times a rater retries one request that failed while the server was up.
RETRIES = 3
#: How long one API call may take before it counts as failed, in seconds.
CALL_TIMEOUT_S = 60
PROGRESS = re.compile(r'<progress value="(\d+)"')


@dataclass
class Shared:
    """State shared by the rater threads and the main thread."""

    study_id: str
    url: str
    downloads: Path
    deadline: float
    size: int
    client_kind: str = "gradio"
    think_s: float = 0.0
    acks: Acks = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resumes: list[str] = field(default_factory=list)  # "ok" or what went wrong
    start_retries: list[str] = field(default_factory=list)  # why a new rater's first call had to be repeated
    downloaded: int = 0
    broken_downloads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: threading.Barrier | None = None
    killed: threading.Event = field(default_factory=threading.Event)
    restarted: threading.Event = field(default_factory=threading.Event)

    def client(self) -> GradioCaller | HttpCaller:
        if self.client_kind == "http":
            return HttpCaller(self.url, self.downloads)
        return GradioCaller(Client(self.url, verbose=False, download_files=str(self.downloads)))

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


@dataclass
class GradioCaller:
    """Calls an endpoint with ``gradio_client`` (which downloads the files in the outputs)."""

    client: Client

    def call(self, api_name: str, *data: object) -> list[object]:
        return list(self.client.submit(*data, api_name=api_name).result(timeout=CALL_TIMEOUT_S))


@dataclass
class HttpCaller:
    """Calls an endpoint through Gradio's REST API with plain ``httpx``, downloading the files in the outputs.

    ``POST /gradio_api/call/<api>`` queues the call and returns an event id; ``GET`` on it streams server-sent
    events until ``complete`` (the outputs) or ``error``. Every call carries the client's session hash, as a
    browser tab's calls do (without one, Gradio sets up a new session, a copy of the whole app's state, per call).
    """

    url: str
    downloads: Path
    session_hash: str = field(default_factory=lambda: secrets.token_hex(8))
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=CALL_TIMEOUT_S))

    def call(self, api_name: str, *data: object) -> list[object]:
        endpoint = f"{self.url}gradio_api/call/{api_name.strip('/')}"
        posted = self.http.post(endpoint, json={"data": list(data), "session_hash": self.session_hash})
        posted.raise_for_status()
        event = ""
        with self.http.stream("GET", f"{endpoint}/{posted.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event in ("complete", "error"):
                    payload = json.loads(line.removeprefix("data: "))
                    if event == "error":
                        raise RuntimeError(f"{api_name}: {payload}")
                    return [self.download(value) if isinstance(value, dict) and "url" in value else value
                            for value in payload]  # fmt: skip
        raise RuntimeError(f"{api_name}: the event stream ended without a result")

    def download(self, file: dict[str, object]) -> str:
        response = self.http.get(str(file["url"]))
        response.raise_for_status()
        path = self.downloads / secrets.token_hex(8) / Path(str(file["path"])).name
        path.parent.mkdir(parents=True)
        path.write_bytes(response.content)
        return str(path)


def page_done(page: list[object]) -> int:
    """How many stimuli the page says are rated (from its progress bar; 0 when it has none)."""
    match = PROGRESS.search(str(page[5]))
    return int(match.group(1)) if match else 0


def rate_study(shared: Shared, seed: int) -> None:
    """One rater: start, then rate until done; after a failed call (a server kill), reconnect and resume.

    Bounded by the deadline and by :data:`RETRIES` failed calls."""
    rng = random.Random(seed)
    assert shared.started is not None
    try:
        client, token, stimulus, page = begin(shared, seed)
    except Exception:
        return  # reported by begin()
    finally:
        with contextlib.suppress(threading.BrokenBarrierError):
            shared.started.wait(timeout=max(shared.deadline - time.monotonic(), 1))
    done, failures = page_done(page), 0
    while stimulus and time.monotonic() < shared.deadline:
        score = rng.randint(MIN_SCORE, MAX_SCORE)
        if shared.think_s:
            time.sleep(rng.expovariate(1 / shared.think_s))
        start = time.perf_counter()
        try:
            _, next_stimulus, *page = client.call("/survey_rate", shared.study_id, token, stimulus, score)
        except Exception as error:  # connection refused or reset, a timeout, an error from the app
            failures += 1
            if failures > RETRIES:
                shared.fail(f"rater {seed}: {type(error).__name__}: {error}")
                return
            try:
                client, stimulus, done = resume(shared, token, stimulus, done, error)
            except Exception as resume_error:
                shared.fail(f"rater {seed} could not resume: {type(resume_error).__name__}: {resume_error}")
                return
            continue
        elapsed = time.perf_counter() - start
        with shared.lock:
            shared.acks[token, stimulus] = score
            shared.latencies.append(elapsed)
        done += 1
        stimulus = next_stimulus
        if stimulus:
            check_download(shared, page[4])
    if stimulus:
        shared.fail(f"rater {seed}: gave up at the deadline with {done} ratings done")


def check_download(shared: Shared, path: str) -> None:
    """Count a downloaded stimulus, and record it unless it decodes completely to the study's size."""
    try:
        with Image.open(path) as image:
            image.load()
            intact = image.size == (shared.size, shared.size)
    except (OSError, SyntaxError):
        intact = False
    with shared.lock:
        shared.downloaded += 1
        if not intact:
            shared.broken_downloads.append(f"broken or wrong-size stimulus download: {path}")


def begin(shared: Shared, seed: int) -> tuple[GradioCaller | HttpCaller, str, str, list[object]]:
    """Connect and call ``/survey_start`` as a new rater: (client, token, first stimulus, page). Retried
    :data:`RETRIES` times on a failure (each counted in ``shared.start_retries``), then raised."""
    for attempt in range(RETRIES + 1):
        try:
            client = shared.client()
            token, stimulus, *page = client.call("/survey_start", shared.study_id, "", "")
            return client, token, stimulus, page
        except Exception as error:
            if attempt == RETRIES:
                shared.fail(f"rater {seed} could not start: {type(error).__name__}: {error}")
                raise
            with shared.lock:
                shared.start_retries.append(f"{type(error).__name__}: {error}")
            time.sleep(0.5)
    raise AssertionError("unreachable")


def resume(
    shared: Shared, token: str, stimulus: str, done: int, error: Exception
) -> tuple[GradioCaller | HttpCaller, str, int]:
    """After a failed rating: wait for the server (restarted, if it was killed), reconnect and resume.

    Records whether the resumed page is where the rater was: ``done`` ratings and the same stimulus, or one
    more (the failed rating was stored before the kill) and a new stimulus. Returns the new client, the
    stimulus to rate and how many are done.
    """
    if not (shared.killed.is_set() or shared.restarted.is_set()):
        shared.fail(f"a rating failed while the server was up ({type(error).__name__}: {error})")
    if shared.killed.is_set():
        shared.restarted.wait(timeout=max(shared.deadline - time.monotonic(), 1))
    else:
        time.sleep(0.5)
    client = shared.client()
    _, resumed, *page = client.call("/survey_start", shared.study_id, token, "")
    now_done = page_done(page)
    if (now_done, resumed == stimulus) in ((done, True), (done + 1, False)):
        verdict = "ok"
    else:
        verdict = f"resumed at {now_done} done, {'same' if resumed == stimulus else 'other'} stimulus; was {done}"
    with shared.lock:
        shared.resumes.append(verdict)
    return client, resumed, now_done


def stored_ratings(store: Store) -> list[tuple[str, str, int]]:
    """Every stored rating as (rater token, stimulus id, score)."""
    with store.session() as session:
        rows = session.execute(select(Rater.token, Stimulus.public_id, Rating.score).join(Rater).join(Stimulus))
        return [tuple(row) for row in rows]


def missing_or_wrong(acks: Acks, stored: list[tuple[str, str, int]]) -> list[str]:
    """Acknowledged ratings not stored exactly once with their score, and ratings stored twice."""
    counts: dict[tuple[str, str], list[int]] = {}
    for token, stimulus, score in stored:
        counts.setdefault((token, stimulus), []).append(score)
    problems = [f"stored {len(s)}×: {key}" for key, s in counts.items() if len(s) > 1]
    problems += [f"{'missing' if key not in counts else 'wrong score'}: {key}" for key, score in acks.items()
                 if counts.get(key) != [score]]  # fmt: skip
    return problems


def integrity_check(database: Path) -> str:
    """SQLite's ``PRAGMA integrity_check`` of the database file ("ok" when sound), read-only."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return ", ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))


def percentile_ms(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=50, help="concurrent raters (one thread and client each)")
    parser.add_argument("--images", type=int, default=10, help="source images; 4 stimuli each")
    parser.add_argument("--size", type=int, default=64, help="side of the square images in pixels")
    parser.add_argument("--client", choices=["gradio", "http"], default="gradio", help="gradio_client or httpx")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause before each score, in seconds")
    parser.add_argument("--kill-after", type=int, default=0, help="kill -9 the server after this many ratings")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the temporary data folder)")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder, store = fresh_store(Path(tmp), args.images, args.size, args.database_url)
        data_dir = Path(tmp) / "data"
        if args.database_url:
            os.environ[DATABASE_URL_ENV] = args.database_url  # for the app subprocess
        study = create_study(store, "load", folder, ["bicubic", "edsr"], reference=True, anchors=True)
        n_stimuli = len(study.conditions) * study.images
        app = LiveApp(data_dir)
        app.start()
        deadline = time.monotonic() + args.timeout
        downloads = Path(tmp) / "downloads"
        shared = Shared(study.public_id, app.url, downloads, deadline, args.size, args.client, args.think)
        shared.started = threading.Barrier(args.raters + 1)
        threads = [threading.Thread(target=rate_study, args=(shared, seed), daemon=True) for seed in range(args.raters)]
        kill_report = ""
        try:
            for thread in threads:
                thread.start()
            with contextlib.suppress(threading.BrokenBarrierError):  # a rater could not start: reported below
                shared.started.wait(timeout=args.timeout)
            start, server_cpu, client_cpu = time.perf_counter(), app.cpu_seconds(), time.process_time()
            if args.kill_after:
                kill_report = kill_and_restart(shared, app, store, data_dir / DATABASE_FILE, args.kill_after)
            for thread in threads:
                thread.join(timeout=max(shared.deadline - time.monotonic(), 0.1))
            elapsed = time.perf_counter() - start
            peak_rss = app.peak_rss_mib()
            server_cpu = app.cpu_seconds() - server_cpu  # meaningless after a restart: not printed then
            client_cpu = time.process_time() - client_cpu
        finally:
            app.stop()
        problems = missing_or_wrong(shared.acks, stored_ratings(store))
        integrity = integrity_check(data_dir / DATABASE_FILE) if store.engine.dialect.name == "sqlite" else "n/a"
        n_stored = len(stored_ratings(store))
        store.engine.dispose()

    latencies = shared.latencies
    print(f"{store.engine.dialect.name}: {args.raters} raters × {n_stimuli} stimuli of {args.size}² px, over HTTP "
          f"({args.client} client, think time {args.think:g} s)")  # fmt: skip
    print(f"{len(shared.acks)} ratings acknowledged, {n_stored} stored, in {elapsed:.1f} s: "
          f"{len(shared.acks) / elapsed:.1f} ratings/s; server peak RSS {peak_rss:.0f} MiB")  # fmt: skip
    if not args.kill_after:
        print(f"CPU: server {server_cpu * 1000 / max(n_stored, 1):.0f} ms per rating, these client threads "
              f"{client_cpu * 1000 / max(n_stored, 1):.0f} ms per rating, on {os.cpu_count()} cores shared with "
              f"other work (load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    if len(latencies) >= 2:
        print("rate + next stimulus: " + ", ".join(f"p{q} {percentile_ms(latencies, q):.0f} ms" for q in (50, 95, 99))
              + f", max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    if shared.start_retries:
        print(f"{len(shared.start_retries)} failed starts retried, e.g. {shared.start_retries[0]}")
    if kill_report:
        bad_resumes = [verdict for verdict in shared.resumes if verdict != "ok"]
        print(kill_report)
        print(f"after the restart: {len(shared.resumes) - len(bad_resumes)} of {len(shared.resumes)} interrupted "
              f"raters resumed where they were" + (f"; {bad_resumes[:5]}" if bad_resumes else ""))  # fmt: skip
        problems += bad_resumes
    print(f"every acknowledged rating stored exactly once with its score: {not problems}; integrity_check: {integrity}")
    print(f"stimulus downloads: {shared.downloaded}, complete PNGs of {args.size}² px: "
          f"{shared.downloaded - len(shared.broken_downloads)}")  # fmt: skip
    problems += shared.errors + shared.broken_downloads
    for problem in problems[:20]:
        print("  problem:", problem)
    if problems or integrity not in ("ok", "n/a") or n_stored != args.raters * n_stimuli:
        sys.exit(1)


def kill_and_restart(shared: Shared, app: LiveApp, store: Store, database: Path, after: int) -> str:
    """Once ``after`` ratings are acknowledged: ``kill -9`` the app, check the database while it is down, restart
    it. Returns what was found."""
    while len(shared.acks) < after and time.monotonic() < shared.deadline:
        time.sleep(0.02)
    shared.killed.set()
    app.kill()
    with shared.lock:
        acked = dict(shared.acks)
    lost = missing_or_wrong(acked, stored_ratings(store))
    integrity = integrity_check(database) if store.engine.dialect.name == "sqlite" else "n/a"
    store.engine.dispose()
    down = time.perf_counter()
    app.start()
    shared.restarted.set()
    shared.killed.clear()
    shared.errors.extend(f"lost at the kill: {problem}" for problem in lost)
    return (
        f"kill -9 after {len(acked)} acknowledged ratings: {len(acked) - len(lost)} of them in the database, "
        f"integrity_check {integrity}; restarted in {time.perf_counter() - down:.1f} s"
    )


if __name__ == "__main__":
    main()
