"""Studies: creating them with precomputed stimuli, per-rater random playlists, and rating or choice submission.

Creating a study treats every image of a folder as ground truth: it is cropped to a multiple of 4, downscaled
×4 with the project's MATLAB bicubic (:func:`sr_app.resize.make_lr`), and each condition's ×4 result is stored once
as a metadata-free PNG named by a random token. A condition is a computed method, or a method folder of precomputed
outputs (:mod:`sr_app.outputs`). All versions of one image have the size of its cropped original.

A study follows one of two protocols (:data:`~survey.db.PROTOCOLS`): absolute category rating (ACR: one stimulus
at a time, a score from 1 to 5) or pair comparison (PC, 2AFC: two versions of one image, the rater picks the better
one, or "no difference" where the study allows it). The rater side is three calls: :func:`start_rater` (a new
anonymous rater and their stored random order: every stimulus for ACR, every pair of conditions on every image for
PC), :func:`progress` (where a rater is; resuming is just calling it again) and :func:`submit_rating` (ACR) or
:func:`submit_choice` (PC).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import random
import shutil
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from sr_app.images import list_images, load_rgb
from sr_app.methods import Method, MethodError, Settings, parse_methods
from sr_app.outputs import read_outputs
from sr_app.resize import magnify, make_lr
from sr_app.upscalers import SCALE
from sr_app.weights import WEIGHTS_DIR
from survey.db import (
    ACR,
    ACR_LABELS,
    CLOSED,
    FLIP,
    LEFT,
    MAX_SCORE,
    MIN_SCORE,
    NEAREST,
    OPEN,
    PC,
    PRESENTATIONS,
    PROTOCOLS,
    REFERENCE,
    RIGHT,
    TIE,
    Assignment,
    Choice,
    Condition,
    Rater,
    Rating,
    SourceImage,
    Stimulus,
    Store,
    Study,
    Trial,
    new_token,
    utc_now,
)

DEFAULT_INSTRUCTIONS = (
    "You will see a series of photos, one at a time. Some have been enlarged from a small version by different "
    "methods. Rate the overall visual quality of each photo on this scale, trusting your first impression; "
    "there are no right or wrong answers. Please use a screen where the photo fits without zooming."
)
DEFAULT_PC_INSTRUCTIONS = (
    "You will see pairs of photos: two versions of the same photo, enlarged from a small version by different "
    "methods. For each pair, choose the version that looks better to you, trusting your first impression; there "
    "are no right or wrong answers. Please use a screen where the photo fits without zooming."
)
SELF_REPORT_MAX_CHARS = 500
STORAGE_ERROR = (
    "The survey could not save this just now: its database is busy or out of space. Everything you rated before "
    "is kept; please try again in a moment."
)
logger = logging.getLogger(__name__)


class SurveyError(ValueError):
    """A request the survey cannot accept; the message is meant for the person who made it."""


class StorageError(SurveyError):
    """The database failed (locked beyond the busy timeout, disk full, connection lost); nothing was changed."""


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn a database failure inside the block into a :class:`StorageError` with :data:`STORAGE_ERROR` for the
    rater, and log its cause for the admin. The failed transaction is rolled back: what was stored stays."""
    try:
        yield
    except OperationalError as error:
        logger.error("Survey storage failed: %s", error.orig or error)
        raise StorageError(STORAGE_ERROR) from error


@dataclass(frozen=True)
class StudySummary:
    """What the admin sees of a study in listings."""

    name: str
    public_id: str
    status: str
    created_at: datetime
    images: int
    conditions: tuple[str, ...]
    raters: int
    finished_raters: int
    #: Scores (ACR) or choices (PC) stored.
    ratings: int
    protocol: str = ACR
    allow_tie: bool = False
    presentation: str = FLIP


@dataclass(frozen=True)
class Progress:
    """Where a rater stands: ``done`` of ``total`` stimuli rated (ACR) or pairs compared (PC).

    ``stimulus`` is the opaque id of what to answer next, ``None`` once everything is answered: a stimulus (ACR)
    or a trial (PC), whose two stimuli ``pair`` holds as (version A, version B). ``allow_tie`` and ``presentation``
    say how a PC study asks. Nothing here tells which condition a stimulus shows.
    """

    study: str
    token: str
    done: int
    total: int
    stimulus: str | None
    study_open: bool
    pair: tuple[str, str] | None = None
    allow_tie: bool = False
    presentation: str = FLIP

    @property
    def finished(self) -> bool:
        return self.stimulus is None


@dataclass(frozen=True)
class StudyIntro:
    """What a rater sees before rating: instructions and the two calibration examples (their stored PNG files)."""

    instructions: str
    best_example: Path
    worst_example: Path
    study_open: bool
    protocol: str = ACR
    allow_tie: bool = False
    presentation: str = FLIP


def save_png(rgb: np.ndarray, path: Path) -> None:
    """Write uint8 HWC RGB as a PNG that carries no metadata (no text, time, gamma or EXIF chunks)."""
    Image.fromarray(rgb).save(path, format="PNG")


def study_methods(methods: Sequence[str]) -> list[Method]:
    """The methods a study's ``--methods`` names (registry names or ``label=path`` user models), each once; none
    for an empty list."""
    if not methods:
        return []
    try:
        resolved = parse_methods(",".join(methods))
    except MethodError as error:
        raise SurveyError(f"{error}.") from error
    clashes = [method.name for method in resolved if method.name in (REFERENCE, NEAREST)]
    if clashes:
        raise SurveyError(f"{', '.join(clashes)} is the name of a built-in condition; pick another label.")
    return resolved


def ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR cropped to a multiple of 4) of a study image, both uint8 HWC RGB; it must be at least 4×4 pixels."""
    hr = load_rgb(path)
    if min(hr.shape[:2]) < SCALE:
        raise SurveyError(f"{path.name} is {hr.shape[1]}×{hr.shape[0]}; images must be at least 4×4 pixels.")
    return make_lr(hr, SCALE)


def create_study(
    store: Store,
    name: str,
    images_dir: str | Path,
    methods: Sequence[str] = (),
    *,
    outputs: str | Path | None = None,
    reference: bool = False,
    anchors: bool = False,
    instructions: str | None = None,
    weights_dir: Path = WEIGHTS_DIR,
    device: str | None = None,
    calibration: str | Path | None = None,
    protocol: str = ACR,
    allow_tie: bool = False,
    presentation: str = FLIP,
) -> StudySummary:
    """Create a study from a folder of ground-truth images and precompute every stimulus.

    Args:
        store: where to write the rows and PNGs.
        name: unique study name, private to the admin.
        images_dir: folder of at least 2 images (png, jpg, bmp, tif, webp), each at least 4×4 pixels.
        methods: method registry names (:data:`sr_app.methods.REGISTRY`) or ``label=path`` user model files.
        outputs: a dataset folder of precomputed outputs, ``ROOT/<dataset>`` as ``python -m train.evaluate --save
            ROOT`` writes it: each method folder in it becomes a condition named by the folder, its outputs (one per
            image of ``images_dir``, of the cropped image's size) the stimuli (see :mod:`sr_app.outputs`).
        reference: add the original image as a hidden reference condition.
        anchors: add nearest-neighbour ×4 as a low-anchor condition.
        instructions: text shown to raters before they start; default :data:`DEFAULT_INSTRUCTIONS` (ACR) or
            :data:`DEFAULT_PC_INSTRUCTIONS` (PC).
        weights_dir, device: where the methods' weights are and where they run (:class:`sr_app.methods.Settings`).
        calibration: the image whose original and nearest-neighbour versions are shown to raters as examples of
            the top and bottom of the scale; default scikit-image's cat photo. Use one that is not in the study:
            raters would recognise its calibration versions among the stimuli.
        protocol: :data:`~survey.db.ACR` (scores 1–5) or :data:`~survey.db.PC` (pair comparison; needs at least
            2 conditions).
        allow_tie: PC only: raters may answer "no difference".
        presentation: PC only: :data:`~survey.db.FLIP` (both versions at the same position, the rater flips between
            them) or :data:`~survey.db.SIDE_BY_SIDE`.

    Conditions are the computed methods, then the output folders by name, then the reference and the anchor.

    Raises:
        SurveyError: bad name, methods or images, or neither methods nor outputs; ``WeightsError`` when a method's
        weights are missing; ``OutputsError`` or ``ImageError`` naming the file when an output folder cannot be
        used. Everything is checked before anything is written, and nothing is written when creation fails.
    """
    name = name.strip()
    if not name:
        raise SurveyError("A study needs a name.")
    if protocol not in PROTOCOLS:
        raise SurveyError(f"The protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}.")
    if presentation not in PRESENTATIONS:
        raise SurveyError(f"The presentation must be one of {', '.join(PRESENTATIONS)}, not {presentation!r}.")
    if protocol == ACR and (allow_tie or presentation != FLIP):
        raise SurveyError("Ties and the presentation are options of pair comparison studies (protocol pc).")
    computed = study_methods(methods)
    if not computed and outputs is None:
        raise SurveyError(
            "A study needs methods to compare: give methods (--methods), a folder of their outputs (--outputs), "
            "or both."
        )
    with store.session() as session:
        if session.scalar(select(Study.id).where(Study.name == name)) is not None:
            raise SurveyError(f"A study named {name!r} already exists; pick another name.")
    paths = list_images(images_dir)
    stems = [path.stem for path in paths]
    if len(paths) < 2:
        raise SurveyError(
            f"{images_dir} holds {len(paths)} image(s); a study needs at least 2 so that two versions of one image "
            "are never shown in a row."
        )
    if len(set(stems)) != len(stems):
        raise SurveyError(f"Image names in {images_dir} must differ by more than their extension.")
    precomputed: dict[str, dict[str, Path]] = {}
    if outputs is not None:
        sizes = {path.stem: ground_truth(path)[1].shape[:2] for path in paths}
        precomputed = read_outputs(outputs, sizes, reserved=[*(m.name for m in computed), REFERENCE, NEAREST])
    settings = Settings(device=device, weights_dir=weights_dir)
    upscalers = {method.name: method.load(settings) for method in computed}
    conditions = [*upscalers, *precomputed, *([REFERENCE] if reference else []), *([NEAREST] if anchors else [])]
    if protocol == PC and len(conditions) < 2:
        raise SurveyError(f"A pair comparison needs at least 2 conditions to compare; this one has {conditions}.")
    if instructions is None:
        instructions = DEFAULT_PC_INSTRUCTIONS if protocol == PC else DEFAULT_INSTRUCTIONS

    study = Study(
        public_id=new_token(), name=name, instructions=instructions.strip(), status=OPEN,
        calibration_high=new_token(), calibration_low=new_token(), protocol=protocol, allow_tie=allow_tie,
        presentation=presentation,
    )  # fmt: skip
    by_name = {condition: Condition(name=condition) for condition in conditions}
    study.conditions = list(by_name.values())
    folder = store.study_dir(study.public_id)
    folder.mkdir(parents=True)
    try:
        calibration_lr, calibration_hr = make_lr(load_rgb(calibration) if calibration else skdata.chelsea(), SCALE)
        save_png(calibration_hr, store.png_path(study.public_id, study.calibration_high))
        save_png(magnify(calibration_lr, SCALE), store.png_path(study.public_id, study.calibration_low))
        for path in paths:
            lr, hr = ground_truth(path)
            versions = {REFERENCE: hr, NEAREST: magnify(lr, SCALE)}
            image = SourceImage(name=path.stem, width=hr.shape[1], height=hr.shape[0])
            for condition in conditions:
                if condition in upscalers:
                    rgb = upscalers[condition](lr)
                elif condition in precomputed:
                    rgb = load_rgb(precomputed[condition][path.stem])
                else:
                    rgb = versions[condition]
                if rgb.shape != hr.shape:
                    raise RuntimeError(f"{condition} made {rgb.shape} from {path.name}, expected {hr.shape}")
                stimulus = Stimulus(public_id=new_token(), condition=by_name[condition])
                save_png(rgb, store.png_path(study.public_id, stimulus.public_id))
                image.stimuli.append(stimulus)
            study.images.append(image)
        with store.session() as session, session.begin():
            session.add(study)
    except IntegrityError as error:
        shutil.rmtree(folder)
        raise SurveyError(f"A study named {name!r} already exists; pick another name.") from error
    except BaseException:
        shutil.rmtree(folder)
        raise
    return summarize(store, name)


def get_study(session: Session, name: str) -> Study:
    """The study called ``name``; :class:`SurveyError` listing the known names if there is none."""
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        known = session.scalars(select(Study.name).order_by(Study.name)).all()
        raise SurveyError(f"No study named {name!r}; known studies: {', '.join(known) or 'none'}.")
    return study


def summarize(store: Store, name: str) -> StudySummary:
    """Counts and status of one study."""
    with store.session() as session:
        study = get_study(session, name)
        raters = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id))
        finished = session.scalar(
            select(func.count()).select_from(Rater).where(Rater.study_id == study.id, Rater.finished_at.is_not(None))
        )
        answers = select(func.count()).select_from(Choice if study.protocol == PC else Rating).join(Rater)
        ratings = session.scalar(answers.where(Rater.study_id == study.id))
        return StudySummary(
            name=study.name, public_id=study.public_id, status=study.status, created_at=study.created_at,
            images=len(study.images), conditions=tuple(c.name for c in study.conditions),
            raters=raters or 0, finished_raters=finished or 0, ratings=ratings or 0, protocol=study.protocol,
            allow_tie=study.allow_tie, presentation=study.presentation,
        )  # fmt: skip


def list_studies(store: Store) -> list[StudySummary]:
    """Every study, oldest first."""
    with store.session() as session:
        names = session.scalars(select(Study.name).order_by(Study.created_at, Study.id)).all()
    return [summarize(store, name) for name in names]


def set_status(store: Store, name: str, status: str) -> None:
    """Open or close a study (:data:`~survey.db.OPEN` or :data:`~survey.db.CLOSED`); closed ones take no ratings."""
    if status not in (OPEN, CLOSED):
        raise SurveyError(f"Status must be {OPEN!r} or {CLOSED!r}, not {status!r}.")
    with store.session() as session, session.begin():
        get_study(session, name).status = status


def playlist(image_of: Sequence[Hashable], rng: random.Random) -> list[int]:
    """A random order of ``range(len(image_of))`` in which no two consecutive items share an image.

    ``image_of[i]`` is the image of stimulus ``i``. Each step picks uniformly among the stimuli that keep the
    rest arrangeable (after an item of image ``c``, the ``r`` items left need every image to hold at most
    ``ceil(r / 2)`` of them and ``c`` at most ``floor(r / 2)``), so the result is always valid when one exists:
    no image holds more than half the stimuli (rounded up). Raises :class:`ValueError` otherwise. O(n × images).
    """
    pools: dict[Hashable, list[int]] = {}
    for index, image in enumerate(image_of):
        pools.setdefault(image, []).append(index)
    order: list[int] = []
    previous: Hashable = None
    for rest in range(len(image_of) - 1, -1, -1):
        (top, top_count), *runner_up = heapq.nlargest(2, ((i, len(p)) for i, p in pools.items()), key=itemgetter(1))
        second_count = runner_up[0][1] if runner_up else 0

        images = [
            image
            for image, pool in pools.items()
            if image != previous
            and len(pool) - 1 <= rest // 2  # this image again, every other place from the second
            and (second_count if image == top else top_count) <= (rest + 1) // 2  # any other image
        ]
        if not images:
            raise ValueError("No order avoids showing one image twice in a row: one image has too many versions.")
        previous = rng.choices(images, weights=[len(pools[image]) for image in images])[0]
        pool = pools[previous]
        order.append(pool.pop(rng.randrange(len(pool))))
        if not pool:
            del pools[previous]
    return order


def pair_schedule(
    stimuli: Sequence[tuple[Hashable, Hashable]], rater_number: int, rng: random.Random
) -> list[tuple[Hashable, Hashable]]:
    """A pair comparison rater's trials as (version A, version B): every pair of versions of every image once, in a
    random order that never shows one image twice in a row (:func:`playlist`).

    ``stimuli`` are (stimulus, image) with the conditions in the same order for every image. ``rater_number``
    (0, 1, 2... in the order raters start) balances the sides: each trial shows its two versions in the opposite
    order to the next rater, and the orders alternate over the pairs and images of one rater, so every condition is
    version A about half of the time.
    """
    versions: dict[Hashable, list[Hashable]] = {}
    for stimulus, image in stimuli:
        versions.setdefault(image, []).append(stimulus)
    trials, image_of = [], []
    for j, (image, image_versions) in enumerate(versions.items()):
        for k, (a, b) in enumerate(itertools.combinations(image_versions, 2)):
            trials.append((b, a) if (j + k + rater_number) % 2 else (a, b))
            image_of.append(image)
    return [trials[i] for i in playlist(image_of, rng)]


def _study_by_public_id(session: Session, study_id: str) -> Study:
    study = session.scalar(select(Study).where(Study.public_id == study_id))
    if study is None:
        raise SurveyError("This survey link is not valid. Please check the address you were given.")
    return study


def _rater(session: Session, study_id: str, token: str) -> Rater:
    rater = session.scalar(select(Rater).join(Study).where(Rater.token == token, Study.public_id == study_id))
    if rater is None:
        raise SurveyError("Unknown participant for this survey; please start again from the survey link.")
    return rater


def _count(session: Session, table: type[Assignment | Rating | Trial | Choice], rater_id: int) -> int:
    """How many of the rater's assignments (stimuli to rate), ratings, trials (pairs) or choices are stored."""
    return session.scalar(select(func.count()).select_from(table).where(table.rater_id == rater_id)) or 0


def study_intro(store: Store, study_id: str) -> StudyIntro:
    """Instructions and calibration examples of the study whose rater link holds ``study_id``."""
    with store.session() as session:
        study = _study_by_public_id(session, study_id)
        return StudyIntro(
            instructions=study.instructions,
            best_example=store.png_path(study.public_id, study.calibration_high),
            worst_example=store.png_path(study.public_id, study.calibration_low),
            study_open=study.status == OPEN,
            protocol=study.protocol,
            allow_tie=study.allow_tie,
            presentation=study.presentation,
        )


def start_rater(store: Store, study_id: str, self_report: str = "", rng: random.Random | None = None) -> Progress:
    """Register a new anonymous rater with a stored random order of all stimuli (ACR) or of all pairs to compare
    (PC, :func:`pair_schedule`); return their progress.

    ``self_report`` is optional free text (trimmed to 500 characters). Raises :class:`SurveyError` when the
    link is invalid or the study is closed, :class:`StorageError` when the database fails.
    """
    rng = rng or random.Random()
    with storage_errors(), store.session() as session, session.begin():
        study = _study_by_public_id(session, study_id)
        if study.status != OPEN:
            raise SurveyError("This survey is closed. Thank you for your interest.")
        stimuli = session.execute(
            select(Stimulus.id, Stimulus.image_id)
            .join(SourceImage)
            .where(SourceImage.study_id == study.id)
            .order_by(Stimulus.image_id, Stimulus.condition_id)
        ).all()
        rater_number = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id)) or 0
        rater = Rater(study=study, token=new_token(), self_report=self_report.strip()[:SELF_REPORT_MAX_CHARS] or None)
        if study.protocol == PC:
            trials = pair_schedule([tuple(row) for row in stimuli], rater_number, rng)
            rater.trials = [Trial(position=p, left_id=a, right_id=b) for p, (a, b) in enumerate(trials)]
        else:
            stimuli.sort()
            order = playlist([image_id for _, image_id in stimuli], rng)
            rater.assignments = [Assignment(position=p, stimulus_id=stimuli[i][0]) for p, i in enumerate(order)]
        session.add(rater)
    return progress(store, study_id, rater.token)


def progress(store: Store, study_id: str, token: str) -> Progress:
    """Where rater ``token`` stands in study ``study_id``; marks the next stimulus as shown now.

    Calling it again (a page reload) gives the same next stimulus. Raises :class:`SurveyError` for an unknown
    study or rater, :class:`StorageError` when the database fails.
    """
    with storage_errors(), store.session() as session, session.begin():
        return _advance(session, _rater(session, study_id, token), study_id)


def _advance(session: Session, rater: Rater, study_id: str) -> Progress:
    """The rater's progress; marks their next stimulus or pair as shown now, or them as finished when none is left."""
    study = rater.study
    if study.protocol == PC:
        chosen = select(Choice.id).where(Choice.rater_id == rater.id, Choice.position == Trial.position)
        pending = select(Trial).where(Trial.rater_id == rater.id, ~chosen.exists()).order_by(Trial.position)
        items, answers = Trial, Choice
    else:
        rated = select(Rating.id).where(Rating.rater_id == rater.id, Rating.stimulus_id == Assignment.stimulus_id)
        pending = select(Assignment).where(Assignment.rater_id == rater.id, ~rated.exists())
        pending = pending.order_by(Assignment.position)
        items, answers = Assignment, Rating
    next_up = session.scalar(pending.limit(1))
    total, done = _count(session, items, rater.id), _count(session, answers, rater.id)
    stimulus, pair = None, None
    if isinstance(next_up, Trial):
        stimulus, pair = next_up.public_id, (next_up.left.public_id, next_up.right.public_id)
    elif isinstance(next_up, Assignment):
        stimulus = next_up.stimulus.public_id
    if next_up is not None:
        next_up.shown_at = utc_now()
    elif rater.finished_at is None:
        rater.finished_at = utc_now()
    return Progress(
        study=study_id, token=rater.token, done=done, total=total, stimulus=stimulus, study_open=study.status == OPEN,
        pair=pair, allow_tie=study.allow_tie, presentation=study.presentation,
    )  # fmt: skip


def stimulus_file(store: Store, state: Progress) -> Path:
    """The stored PNG of the stimulus a rater is to rate next (``state.stimulus`` must be set, in an ACR study)."""
    if state.stimulus is None or state.pair is not None:
        raise ValueError("The rater has no stimulus left to rate.")
    return store.png_path(state.study, state.stimulus)


def pair_files(store: Store, state: Progress) -> tuple[Path, Path]:
    """The stored PNGs of versions A and B of the pair a rater is to compare next (``state.pair`` must be set)."""
    if state.pair is None:
        raise ValueError("The rater has no pair left to compare.")
    return store.png_path(state.study, state.pair[0]), store.png_path(state.study, state.pair[1])


def validate_score(score: object) -> int:
    """``score`` as an int on the ACR scale; :class:`SurveyError` unless it is a whole number from 1 to 5.

    Whole floats and numeric strings (``4.0``, ``"4"``) are accepted, as API clients send them.
    """
    value = math.nan
    if isinstance(score, int | float | str) and not isinstance(score, bool):
        with contextlib.suppress(ValueError):
            value = float(score)
    if not (value.is_integer() and MIN_SCORE <= value <= MAX_SCORE):
        scale = ", ".join(f"{s} {label}" for s, label in sorted(ACR_LABELS.items()))
        raise SurveyError(f"A score must be a whole number on the scale {scale}; got {score!r}.")
    return int(value)


def validate_choice(choice: object, allow_tie: bool) -> str:
    """``choice`` as one of :data:`~survey.db.CHOICES` (without :data:`~survey.db.TIE` unless ``allow_tie``);
    :class:`SurveyError` otherwise."""
    allowed = [LEFT, RIGHT, *([TIE] if allow_tie else [])]
    if choice not in allowed:
        raise SurveyError(f"A choice must be one of {', '.join(allowed)}; got {choice!r}.")
    return str(choice)


def submit_rating(store: Store, study_id: str, token: str, stimulus_id: str, score: object) -> Progress:
    """Store rater ``token``'s score (1–5) for stimulus ``stimulus_id`` of an ACR study and return their new progress.

    The response time is measured on the server from when :func:`progress` last sent the stimulus. A second
    score for the same stimulus (a double click, a retry) is ignored: the first one given is kept. Raises
    :class:`SurveyError`, storing nothing, for a score off the scale, a stimulus not shown to this rater, an
    unknown rater or a closed study, and :class:`StorageError` when the database fails (locked by another writer
    beyond the busy timeout, disk full); the ratings already stored are kept.
    """
    value = validate_score(score)
    with storage_errors():
        return _submit(store, study_id, token, ACR, stimulus_id, value)


def submit_choice(store: Store, study_id: str, token: str, trial_id: str, choice: object) -> Progress:
    """Store rater ``token``'s choice for trial ``trial_id`` of a PC study and return their new progress.

    ``choice`` is :data:`~survey.db.LEFT` (version A is better), :data:`~survey.db.RIGHT` (version B is) or, where the
    study allows ties, :data:`~survey.db.TIE`. Exactly one choice per trial is kept, the first one given; response
    times and errors as for :func:`submit_rating`.
    """
    with storage_errors():
        return _submit(store, study_id, token, PC, trial_id, choice)


def _submit(store: Store, study_id: str, token: str, protocol: str, item_id: str, value: object) -> Progress:
    """Store a rater's answer ``value`` (a score or a choice, by ``protocol``) to ``item_id`` (a stimulus or a trial),
    unless they answered it already, and advance them; one transaction."""
    try:
        with store.session() as session, session.begin():
            rater = _rater(session, study_id, token)
            if rater.study.status != OPEN:
                raise SurveyError("This survey is closed; no more ratings are being collected. Thank you!")
            if rater.study.protocol != protocol:
                asks = "a choice between two versions" if rater.study.protocol == PC else "a score from 1 to 5"
                raise SurveyError(f"This survey asks for {asks}.")
            if protocol == PC:
                answer = _new_choice(session, rater, item_id, validate_choice(value, rater.study.allow_tie))
            else:
                answer = _new_rating(session, rater, item_id, int(value))  # validated by submit_rating
            if answer is not None:
                session.add(answer)
                session.flush()
            return _advance(session, rater, study_id)
    except IntegrityError:
        # A concurrent identical submission committed first; the unique constraint kept exactly one.
        with store.session() as session:
            if not _answered(session, token, item_id):
                raise
    return progress(store, study_id, token)


def _elapsed_ms(shown_at: datetime) -> int:
    return max(round((utc_now() - shown_at).total_seconds() * 1000), 0)


def _new_rating(session: Session, rater: Rater, stimulus_id: str, score: int) -> Rating | None:
    """The rating to store, ``None`` if the rater already rated that stimulus."""
    assignment = session.scalar(
        select(Assignment).join(Stimulus).where(Assignment.rater_id == rater.id, Stimulus.public_id == stimulus_id)
    )
    if assignment is None or assignment.shown_at is None:
        raise SurveyError("That image is not one you were shown; please rate the image on your screen.")
    already = select(Rating.id).where(Rating.rater_id == rater.id, Rating.stimulus_id == assignment.stimulus_id)
    if session.scalar(already) is not None:
        return None
    return Rating(
        rater_id=rater.id, stimulus_id=assignment.stimulus_id, score=score, response_ms=_elapsed_ms(assignment.shown_at)
    )


def _new_choice(session: Session, rater: Rater, trial_id: str, choice: str) -> Choice | None:
    """The choice to store, ``None`` if the rater already answered that trial."""
    trial = session.scalar(select(Trial).where(Trial.rater_id == rater.id, Trial.public_id == trial_id))
    if trial is None or trial.shown_at is None:
        raise SurveyError("That pair is not one you were shown; please choose between the versions on your screen.")
    already = select(Choice.id).where(Choice.rater_id == rater.id, Choice.position == trial.position)
    if session.scalar(already) is not None:
        return None
    return Choice(rater_id=rater.id, position=trial.position, choice=choice, response_ms=_elapsed_ms(trial.shown_at))


def _answered(session: Session, token: str, item_id: str) -> bool:
    """Whether rater ``token`` has an answer stored for stimulus or trial ``item_id``."""
    rating = select(Rating.id).join(Stimulus).join(Rater).where(Rater.token == token, Stimulus.public_id == item_id)
    choice = (
        select(Choice.id)
        .join(Trial, (Choice.rater_id == Trial.rater_id) & (Choice.position == Trial.position))
        .join(Rater, Choice.rater_id == Rater.id)
        .where(Rater.token == token, Trial.public_id == item_id)
    )
    return session.scalar(rating) is not None or session.scalar(choice) is not None
