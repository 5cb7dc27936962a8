"""Many raters at once on the app's rater page over HTTP: the rating round trip, server CPU per rating, throughput.

    python benchmarks/survey_http_load.py [--raters 200] [--think 3] [--min-view-ms 1000] [--images 10] [--size 256]
                                          [--apps 1] [--database-url URL] [--kill-after 0] [--timeout 280]

Creates a study of ``--images`` random ``--size``² px images × (bicubic, hidden reference, nearest anchor) in a
temporary data folder and starts ``--apps`` processes of ``python app.py`` on loopback, all on one database (SQLite in
the folder, or ``--database-url``, e.g. PostgreSQL, whose survey tables are dropped first); the raters are split
between them. Each rater is an asyncio task with plain ``httpx``, doing what a browser does: load the page, open,
start, download the first photo; then for every photo think (an exponential pause, mean ``--think`` seconds, but at
least the study's ``--min-view-ms``, as the page makes a rater wait; ``--think 0 --min-view-ms 0`` is a closed loop:
the next score the moment the photo arrives), post the score with the viewing values and download the next photo.
The timed step, the rating round trip, is that post plus that download. Raters arrive at random moments over the first
think time (or the first second, in a closed loop).

The app runs with the rate limits of its environment (``SR_LAB_RATE_LIMIT_*``, :class:`survey.ui.rate.RateLimits`;
the defaults unless set), which the benchmark prints. They count per client address; every rater here sends its own
``X-Forwarded-For``, which the app's server takes as the client's address from loopback (as from a proxy on the same
machine), so each rater is one address as in the field. A rating refused with 429 counts as a failed rater.

Prints ratings per second over the run and while every rater was rating (from the last start to the first end: with
a think time a rater's whole study takes a varying time, and the last ones rate alone), the 50th/95th/99th percentile
and maximum round trip, the CPU time of the app processes per rating (user + system over the whole run: page loads,
starts and downloads included) and of the client, and whether every acknowledged rating is stored exactly once with
its score (and every download was a whole PNG). With ``--kill-after N`` app 0 is killed with SIGKILL once N ratings
are acknowledged, the database is checked while it is down, and it is restarted; its raters retry until it answers,
then resume where they were (at the photo they were rating, or the next one if their last score had been stored).
Exits 1 if any check fails; every loop is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from benchmarks.live_app import LiveApp  # noqa: E402
from benchmarks.survey_load import fresh_store  # noqa: E402
from survey.creation import DEFAULT_MIN_VIEW_MS, create_study  # noqa: E402
from survey.db import MAX_SCORE, MIN_SCORE, Rater, Rating, Stimulus, Store  # noqa: E402
from survey.store import DATABASE_URL_ENV  # noqa: E402
from survey.studies import rater_path  # noqa: E402
from survey.ui.rater_requests import RateLimits  # noqa: E402

#: The acknowledged ratings: (rater token, stimulus id) -> score.
Acks = dict[tuple[str, str], int]
#: What a phone reports with each score.
VIEWING = {"viewport_width": 390, "viewport_height": 844, "device_pixel_ratio": 3.0, "scale": 1.0, "display_ms": 3000}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: How long one request may take before it counts as failed, in seconds.
REQUEST_TIMEOUT_S = 60


@dataclass
class Run:
    """State shared by the rater tasks."""

    study: str
    urls: list[str]
    think_s: float
    #: The study's minimum viewing time, in seconds: the least pause before a score.
    min_view_s: float
    deadline: float
    acks: Acks = field(default_factory=dict)
    #: When each rating was acknowledged, and when each rater started and finished (time.monotonic()).
    ack_times: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resumes: list[str] = field(default_factory=list)  # "ok" or what went wrong
    downloads: int = 0
    broken_downloads: int = 0
    #: Set while app 0 is down (killed, not yet restarted).
    down: asyncio.Event = field(default_factory=asyncio.Event)
    up: asyncio.Event = field(default_factory=asyncio.Event)


async def request(client: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> httpx.Response:
    """``method url``, sent again once if the server had just closed the idle connection it went on (uvicorn closes
    them after 5 s, and a think time can be longer), as browsers do; every request here may be repeated safely."""
    try:
        response = await client.request(method, url, **kwargs)
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        response = await client.request(method, url, **kwargs)
    response.raise_for_status()
    return response


async def post(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> dict:
    return (await request(client, "POST", url, json=body)).json()


async def download(run: Run, client: httpx.AsyncClient, base: str, page: dict) -> None:
    """Download the photos of ``page`` as a browser does, and count any that is not a whole PNG."""
    for name in page["images"]:
        response = await request(client, "GET", f"{base}/{name}.png")
        run.downloads += 1
        whole = response.content.startswith(PNG_SIGNATURE) and response.content.endswith(b"IEND\xaeB`\x82")
        run.broken_downloads += not whole


async def rater(run: Run, client: httpx.AsyncClient, number: int) -> None:
    """One rater, from loading the page to the end of the study (or the deadline)."""
    rng = random.Random(number)
    app = number % len(run.urls)
    base = run.urls[app] + rater_path(run.study).lstrip("/")
    await asyncio.sleep(rng.uniform(0, run.think_s or 1.0))
    await request(client, "GET", base)
    await post(client, f"{base}/open", {})
    page = await post(client, f"{base}/start", {})
    await download(run, client, base, page)
    run.started.append(time.monotonic())
    while page["view"] == "rate" and time.monotonic() < run.deadline:
        think = rng.expovariate(1 / run.think_s) if run.think_s else 0.0
        if think or run.min_view_s:
            await asyncio.sleep(max(think, run.min_view_s))
        score = rng.randint(MIN_SCORE, MAX_SCORE)
        start = time.perf_counter()
        try:
            answered = await post(client, f"{base}/answer", {"token": page["token"], "item": page["item"],
                                                             "answer": score, **VIEWING})  # fmt: skip
            run.acks[page["token"], page["item"]] = score
            run.ack_times.append(time.monotonic())
            await download(run, client, base, answered)
        except httpx.HTTPError as error:
            if app != 0 or not (run.down.is_set() or run.up.is_set()):
                run.errors.append(f"rater {number}: {type(error).__name__}: {error}")
                return
            page = await resume(run, client, base, page)
            continue
        run.latencies.append(time.perf_counter() - start)
        page = answered
    run.finished.append(time.monotonic())
    if page["view"] != "done":
        run.errors.append(f"rater {number}: stopped at the deadline with {page['done']} ratings")


async def resume(run: Run, client: httpx.AsyncClient, base: str, page: dict) -> dict:
    """After a failed rating on the killed app: wait until it is back, reload, and record whether the rater is where
    they were (the same photo, or the next one if their score had been stored before the kill)."""
    while time.monotonic() < run.deadline:
        await run.up.wait()
        try:
            resumed = await post(client, f"{base}/open", {"token": page["token"]})
            await download(run, client, base, resumed)
            break
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
    else:
        raise TimeoutError("the killed app did not come back before the deadline")
    where = (resumed["done"], resumed["item"] == page["item"])
    run.resumes.append("ok" if where in ((page["done"], True), (page["done"] + 1, False)) else f"{where} {page}")
    return resumed


async def kill_and_restart(run: Run, app: LiveApp, store: Store, after: int) -> str:
    """Once ``after`` ratings are acknowledged: SIGKILL ``app``, check the database while it is down, restart it."""
    while len(run.acks) < after and time.monotonic() < run.deadline:
        await asyncio.sleep(0.02)
    run.down.set()
    app.kill()
    acked = dict(run.acks)
    lost = missing_or_wrong(acked, stored_ratings(store))
    down = time.perf_counter()
    await asyncio.to_thread(app.start)
    run.down.clear()
    run.up.set()
    run.errors.extend(f"lost at the kill: {problem}" for problem in lost)
    return (
        f"kill -9 after {len(acked)} acknowledged ratings: {len(acked) - len(lost)} of them in the database; "
        f"restarted in {time.perf_counter() - down:.1f} s"
    )


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


def steady_rate(run: Run) -> tuple[float, float]:
    """(ratings per second, seconds) while every rater was rating: from the last start to the first finish."""
    begin, end = max(run.started, default=0), min(run.finished, default=0)
    return sum(begin <= t <= end for t in run.ack_times) / (end - begin) if end > begin else 0.0, end - begin


def percentile_ms(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000


async def browser(run: Run, number: int, tls: ssl.SSLContext) -> None:
    """Rater ``number`` with a client of their own, as a browser tab (a shared pool of hundreds of connections costs
    httpx far more CPU per request), from an address of their own (``X-Forwarded-For``: 10.x.y.z); ``tls`` is shared
    (making one costs 25 ms of CPU)."""
    address = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
    headers = {"X-Forwarded-For": address}
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, verify=tls, headers=headers) as client:
        await rater(run, client, number)


async def load(run: Run, raters: int, kill: tuple[LiveApp, Store, int] | None) -> str:
    """All raters at once (and the kill, if asked); what the kill found."""
    tls = ssl.create_default_context()
    tasks = [asyncio.create_task(browser(run, number, tls)) for number in range(raters)]
    killer = asyncio.create_task(kill_and_restart(run, *kill)) if kill else None
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            run.errors.append(f"a rater failed: {type(outcome).__name__}: {outcome}")
    return await killer if killer else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=200, help="raters at once (asyncio tasks)")
    parser.add_argument("--think", type=float, default=3.0, help="mean pause before each score, in seconds (0: none)")
    parser.add_argument(
        "--min-view-ms", type=int, default=DEFAULT_MIN_VIEW_MS, help="the study's minimum viewing time (0: none)"
    )
    parser.add_argument("--images", type=int, default=10, help="source images; 3 stimuli each")
    parser.add_argument("--size", type=int, default=256, help="side of the square images in pixels")
    parser.add_argument("--apps", type=int, default=1, help="app processes on the one database")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the temporary data folder)")
    parser.add_argument("--kill-after", type=int, default=0, help="kill -9 app 0 after this many ratings")
    parser.add_argument("--timeout", type=float, default=280, help="give up after this many seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder, store = fresh_store(Path(tmp), args.images, args.size, args.database_url)
        if args.database_url:
            os.environ[DATABASE_URL_ENV] = args.database_url  # for the app processes
        study = create_study(
            store, "load", folder, ["bicubic"], reference=True, anchors=True, min_view_ms=args.min_view_ms
        )
        n_stimuli = len(study.conditions) * study.images
        apps = [LiveApp(Path(tmp) / "data", log=Path(tmp) / f"app{i}.log") for i in range(args.apps)]
        try:
            for app in apps:
                app.start()
            deadline = time.monotonic() + args.timeout
            run = Run(study.public_id, [app.url for app in apps], args.think, args.min_view_ms / 1000, deadline)
            server_cpu, client_cpu = sum(app.cpu_seconds() for app in apps), time.process_time()
            start = time.perf_counter()
            kill = (apps[0], store, args.kill_after) if args.kill_after else None
            kill_report = asyncio.run(load(run, args.raters, kill))
            elapsed = time.perf_counter() - start
            server_cpu = sum(app.cpu_seconds() for app in apps) - server_cpu  # meaningless after a kill: not shown
            client_cpu = time.process_time() - client_cpu
            peak_rss = max(app.peak_rss_mib() for app in apps)
        finally:
            for app in apps:
                app.stop()
        stored = stored_ratings(store)
        problems = missing_or_wrong(run.acks, stored)
        store.engine.dispose()

    latencies = run.latencies
    print(f"{store.engine.dialect.name}, {args.apps} app process(es): {args.raters} raters × {n_stimuli} photos of "
          f"{args.size}² px, think time {args.think:g} s (exponential, at least the minimum viewing time "
          f"{args.min_view_ms} ms), on {os.cpu_count()} cores")  # fmt: skip
    print(f"rate limits per client address (one per rater): {RateLimits.from_env()}")
    rate, window = steady_rate(run)
    print(f"{len(run.acks)} ratings acknowledged, {len(stored)} stored, in {elapsed:.1f} s: "
          f"{len(run.acks) / elapsed:.1f} ratings/s over the run, {rate:.1f} ratings/s while all raters were rating "
          f"({window:.0f} s); app peak RSS {peak_rss:.0f} MiB")  # fmt: skip
    if len(latencies) >= 2:
        print("rating round trip (score + next photo): "
              + ", ".join(f"p{q} {percentile_ms(latencies, q):.0f} ms" for q in (50, 95, 99))
              + f", max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    if not args.kill_after:
        print(f"CPU per rating: app processes {server_cpu * 1000 / max(len(stored), 1):.1f} ms (everything they did), "
              f"client {client_cpu * 1000 / max(len(stored), 1):.1f} ms")  # fmt: skip
    if kill_report:
        bad = [verdict for verdict in run.resumes if verdict != "ok"]
        print(kill_report)
        resumed = len(run.resumes) - len(bad)
        print(f"after the restart: {resumed} of {len(run.resumes)} interrupted raters resumed where they were"
              + (f"; {bad[:3]}" if bad else ""))  # fmt: skip
        problems += bad
    print(f"every acknowledged rating stored exactly once with its score: {not problems}; downloads: "
          f"{run.downloads}, whole PNGs: {run.downloads - run.broken_downloads}")  # fmt: skip
    problems += run.errors
    for problem in problems[:20]:
        print("  problem:", problem)
    if problems or run.broken_downloads or len(stored) != args.raters * n_stimuli:
        sys.exit(1)


if __name__ == "__main__":
    main()
