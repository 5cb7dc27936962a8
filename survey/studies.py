"""Studies: creating them with precomputed stimuli, per-rater random playlists, and rating or choice submission.

Creating a study treats every image of a folder as ground truth: it is cropped to a multiple of 4 (and, with a
:class:`Crop`, to one fixed-size region), downscaled ×4 with the project's MATLAB bicubic
(:func:`sr_app.resize.make_lr`), and each condition's ×4 result is stored once as a metadata-free PNG named by a
random token. A condition is a computed method, or a method folder of precomputed outputs (:mod:`sr_app.outputs`).
All versions of one image have the size of its cropped original, and their files the same length in bytes
(:func:`save_versions`): nothing but the pixels tells them apart.

A study follows one of two protocols (:data:`~survey.db.PROTOCOLS`): absolute category rating (ACR: one stimulus
at a time, a score from 1 to 5) or pair comparison (PC, 2AFC: two versions of one image, the rater picks the better
one, or "no difference" where the study allows it). The rater side is three calls: :func:`start_rater` (a new
anonymous rater and their stored random order: every stimulus for ACR, every pair of conditions on every image for
PC), :func:`progress` (where a rater is; resuming is just calling it again) and :func:`submit_rating` (ACR) or
:func:`submit_choice` (PC). A rater link from a crowd platform carries the rater's id there (``external_id``): the same
id resumes the same rater, and a study's completion code is shown to raters who finished. ACR studies may hold gold
items (:data:`~survey.db.GOLD_RANGES`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import io
import itertools
import logging
import math
import random
import re
import secrets
import shutil
import struct
import zlib
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from sqlalchemy import Connection, Insert, Row, ScalarSelect, false, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

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
    COMPLETION_CODE_MAX_CHARS,
    EXTERNAL_ID_MAX_CHARS,
    FLIP,
    GOLD_RANGES,
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

#: Where the rater page lives in the app: ``/rate/<study public id>`` (served by :mod:`survey.ui.rate`).
RATE_PATH = "/rate"
DEFAULT_INSTRUCTIONS = (
    "You will see a series of photos, one at a time. Some have been enlarged from a small version by different "
    "methods. Rate the overall visual quality of each photo on this scale, trusting your first impression; "
    "there are no right or wrong answers. Please do not zoom the page; where a photo is larger than your screen, "
    "drag it to see the rest."
)
DEFAULT_PC_INSTRUCTIONS = (
    "You will see pairs of photos: two versions of the same photo, enlarged from a small version by different "
    "methods. For each pair, choose the version that looks better to you, trusting your first impression; there "
    "are no right or wrong answers. Please do not zoom the page; where a photo is larger than your screen, drag it to "
    "see the rest."
)
SELF_REPORT_MAX_CHARS = 500
#: The image whose versions are the gold items when none is given: scikit-image's coffee cup (not the calibration cat).
DEFAULT_GOLD_IMAGE = "coffee"
#: Name of a study's gold image: a file stem cannot contain "/", so it never clashes with one of the study's images.
GOLD_PREFIX = "gold/"
#: A private ancillary PNG chunk type (lower-case 1st letter: ancillary, 2nd: private; upper-case 3rd: reserved)
#: that holds only padding; decoders skip it.
PADDING_CHUNK = b"paDd"
#: Length of an empty PNG chunk (length, type, CRC): a padding chunk adds at least this many bytes.
CHUNK_OVERHEAD = 12
#: What a browser may report about how it showed a photo (:class:`Viewing`): the accepted range of each value.
VIEWING_RANGES: dict[str, tuple[float, float]] = {
    "viewport_width": (1, 100_000), "viewport_height": (1, 100_000), "device_pixel_ratio": (0.01, 100),
    "scale": (0.001, 1000), "display_ms": (0, 86_400_000),
}  # fmt: skip
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
    completion_code: str | None = None
    #: Whether the study holds gold items.
    gold: bool = False


@dataclass(frozen=True)
class Progress:
    """Where a rater stands: ``done`` of ``total`` stimuli rated (ACR) or pairs compared (PC).

    ``stimulus`` is the opaque id of what to answer next, ``None`` once everything is answered: a stimulus (ACR)
    or a trial (PC), whose two stimuli ``pair`` holds as (version A, version B). ``allow_tie`` and ``presentation``
    say how a PC study asks; ``completion_code`` is the study's, once the rater has finished. Nothing here tells
    which condition a stimulus shows.
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
    completion_code: str | None = None

    @property
    def finished(self) -> bool:
        return self.stimulus is None


@dataclass(frozen=True)
class StudyIntro:
    """What a rater sees before rating: instructions and the opaque ids of the two calibration examples' PNGs."""

    instructions: str
    best_example: str
    worst_example: str
    study_open: bool
    protocol: str = ACR
    allow_tie: bool = False
    presentation: str = FLIP


@dataclass(frozen=True)
class Viewing:
    """How the rater's browser showed the photo when they answered (:class:`survey.db.ViewingColumns`); ``None``
    where it did not say. Each value must lie in its :data:`VIEWING_RANGES`."""

    viewport_width: int | None = None
    viewport_height: int | None = None
    device_pixel_ratio: float | None = None
    scale: float | None = None
    display_ms: int | None = None

    def __post_init__(self) -> None:
        for name, (low, high) in VIEWING_RANGES.items():
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not low <= value <= high):
                raise SurveyError(f"{name} must be a number from {low:g} to {high:g}; got {value!r}.")


#: An answer without any report of how the photo was shown (from an API client, or an earlier version's page).
NOT_REPORTED = Viewing()


@dataclass(frozen=True)
class Crop:
    """A fixed-size region cut from the centre of every image of a study, ``width`` × ``height`` pixels (multiples
    of 4), so that a study can be designed to fit a screen one image pixel to one screen pixel."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % SCALE or self.height % SCALE:
            raise SurveyError(f"A crop must be positive multiples of {SCALE} wide and high; got {self}.")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, text: str) -> Crop:
        """``"WxH"`` (e.g. ``"360x480"``) as a crop."""
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
        if match is None:
            raise SurveyError(f"A crop is written WIDTHxHEIGHT in pixels, e.g. 360x480; got {text!r}.")
        return cls(int(match[1]), int(match[2]))

    def cut(self, rgb: np.ndarray, name: str) -> np.ndarray:
        """The centre region of uint8 HWC ``rgb`` (first cut to a multiple of 4, as :func:`sr_app.resize.make_lr`
        does); its offsets are multiples of 4, so that the same cut of a ×4 output matches the cut of its input.
        ``name`` (the image's) goes into the error when the image is smaller than the crop."""
        height, width = (rgb.shape[0] // SCALE) * SCALE, (rgb.shape[1] // SCALE) * SCALE
        if height < self.height or width < self.width:
            raise SurveyError(f"{name} is {width}×{height} (cut to a multiple of 4), smaller than the crop {self}.")
        top = (height - self.height) // 2 // SCALE * SCALE
        left = (width - self.width) // 2 // SCALE * SCALE
        return rgb[top : top + self.height, left : left + self.width]


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 HWC RGB as a PNG that carries no metadata (no text, time, gamma or EXIF chunks)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def pad_png(png: bytes, length: int) -> bytes:
    """``png`` grown to exactly ``length`` bytes (at least :data:`CHUNK_OVERHEAD` more than it is) by a
    :data:`PADDING_CHUNK` just before its closing IEND chunk. The padding is random bytes, so that a proxy compressing
    the file cannot shrink one version more than another."""
    fill = length - len(png) - CHUNK_OVERHEAD
    if fill < 0:
        raise ValueError(f"a PNG of {len(png)} bytes cannot be padded to {length}")
    data = PADDING_CHUNK + secrets.token_bytes(fill)
    chunk = struct.pack(">I", fill) + data + struct.pack(">I", zlib.crc32(data))
    return png[:-CHUNK_OVERHEAD] + chunk + png[-CHUNK_OVERHEAD:]  # IEND is the last chunk, 12 bytes long


def save_versions(versions: dict[Path, np.ndarray]) -> None:
    """Write the versions of one image (uint8 HWC RGB by file) as metadata-free PNGs of one length in bytes: each is
    padded (:func:`pad_png`) to :data:`CHUNK_OVERHEAD` bytes more than the longest, so all carry a padding chunk."""
    encoded = {path: png_bytes(rgb) for path, rgb in versions.items()}
    length = max(len(png) for png in encoded.values()) + CHUNK_OVERHEAD
    for path, png in encoded.items():
        path.write_bytes(pad_png(png, length))


def rater_path(study_id: str) -> str:
    """The path of the rater page of the study whose public id is ``study_id``, from the app's address."""
    return f"{RATE_PATH}/{study_id}"


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


def ground_truth(path: Path, crop: Crop | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR cropped to a multiple of 4, and to ``crop`` if given) of a study image, both uint8 HWC RGB; it must be
    at least 4×4 pixels."""
    hr = load_rgb(path)
    if min(hr.shape[:2]) < SCALE:
        raise SurveyError(f"{path.name} is {hr.shape[1]}×{hr.shape[0]}; images must be at least 4×4 pixels.")
    return make_lr(crop.cut(hr, path.name) if crop else hr, SCALE)


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
    crop: Crop | None = None,
    completion_code: str | None = None,
    gold: bool = False,
    gold_image: str | Path | None = None,
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
        crop: cut every image (and the calibration and gold images) to this centre region first; an image smaller
            than it is refused. Precomputed outputs are cut at the same place.
        completion_code: shown to every rater who has answered everything (for a crowd platform); at most 64
            characters.
        gold: ACR only: add gold items, the nearest-neighbour ×4 and the original of ``gold_image`` (default
            scikit-image's coffee cup, cut to the size of the study's first image), mixed into every rater's order
            and left out of the analysis; a rater who scores one outside :data:`~survey.db.GOLD_RANGES` is flagged.

    Conditions are the computed methods, then the output folders by name, then the reference and the anchor.

    Raises:
        SurveyError: bad name, methods, images, crop or options, or neither methods nor outputs; ``WeightsError``
        when a method's weights are missing; ``OutputsError`` or ``ImageError`` naming the file when an output folder
        cannot be used. Everything is checked before anything is written, and nothing is written when creation fails.
    """
    name = name.strip()
    completion_code = (completion_code or "").strip() or None
    if not name:
        raise SurveyError("A study needs a name.")
    if protocol not in PROTOCOLS:
        raise SurveyError(f"The protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}.")
    if presentation not in PRESENTATIONS:
        raise SurveyError(f"The presentation must be one of {', '.join(PRESENTATIONS)}, not {presentation!r}.")
    if protocol == ACR and (allow_tie or presentation != FLIP):
        raise SurveyError("Ties and the presentation are options of pair comparison studies (protocol pc).")
    if protocol == PC and gold:
        raise SurveyError("Gold items are scored on the ACR scale; pair comparison studies (protocol pc) have none.")
    if completion_code and len(completion_code) > COMPLETION_CODE_MAX_CHARS:
        raise SurveyError(f"A completion code has at most {COMPLETION_CODE_MAX_CHARS} characters.")
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
        sizes = {path.stem: ground_truth(path)[1].shape[:2] for path in paths}  # outputs are of the uncut images
        precomputed = read_outputs(outputs, sizes, reserved=[*(m.name for m in computed), REFERENCE, NEAREST])
    gold_truth = None
    if gold:
        gold_name = Path(gold_image).stem if gold_image else DEFAULT_GOLD_IMAGE
        gold_rgb = load_rgb(gold_image) if gold_image else getattr(skdata, DEFAULT_GOLD_IMAGE)()
        height, width = ground_truth(paths[0], crop)[1].shape[:2]
        size = Crop(min(width, gold_rgb.shape[1] // SCALE * SCALE), min(height, gold_rgb.shape[0] // SCALE * SCALE))
        gold_truth = (GOLD_PREFIX + gold_name, make_lr(size.cut(gold_rgb, gold_name), SCALE))
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
        presentation=presentation, completion_code=completion_code,
    )  # fmt: skip
    gold_conditions = list(GOLD_RANGES) if gold_truth else []
    by_name = {condition: Condition(name=condition) for condition in dict.fromkeys([*conditions, *gold_conditions])}
    study.conditions = list(by_name.values())
    folder = store.study_dir(study.public_id)
    folder.mkdir(parents=True)

    def add_image(image: SourceImage, hr: np.ndarray, rgbs: dict[str, np.ndarray]) -> None:
        """Store the versions ``rgbs`` (by condition) of one image whose original is ``hr``."""
        files = {}
        for condition, rgb in rgbs.items():
            if rgb.shape != hr.shape:
                raise RuntimeError(f"{condition} made {rgb.shape} from {image.name}, expected {hr.shape}")
            stimulus = Stimulus(public_id=new_token(), condition=by_name[condition])
            files[store.png_path(study.public_id, stimulus.public_id)] = rgb
            image.stimuli.append(stimulus)
        save_versions(files)
        study.images.append(image)

    try:
        calibration_rgb = load_rgb(calibration) if calibration else skdata.chelsea()
        if crop:
            calibration_rgb = crop.cut(calibration_rgb, Path(calibration).name if calibration else "The calibration")
        calibration_lr, calibration_hr = make_lr(calibration_rgb, SCALE)
        save_versions({
            store.png_path(study.public_id, study.calibration_high): calibration_hr,
            store.png_path(study.public_id, study.calibration_low): magnify(calibration_lr, SCALE),
        })  # fmt: skip
        for path in paths:
            lr, hr = ground_truth(path, crop)
            versions = {REFERENCE: hr, NEAREST: magnify(lr, SCALE)}
            rgbs = {}
            for condition in conditions:
                if condition in upscalers:
                    rgbs[condition] = upscalers[condition](lr)
                elif condition in precomputed:
                    rgb = load_rgb(precomputed[condition][path.stem])
                    rgbs[condition] = crop.cut(rgb, precomputed[condition][path.stem].name) if crop else rgb
                else:
                    rgbs[condition] = versions[condition]
            add_image(SourceImage(name=path.stem, width=hr.shape[1], height=hr.shape[0]), hr, rgbs)
        if gold_truth:
            gold_name, (lr, hr) = gold_truth
            versions = {REFERENCE: hr, NEAREST: magnify(lr, SCALE)}
            image = SourceImage(name=gold_name, width=hr.shape[1], height=hr.shape[0], gold=True)
            add_image(image, hr, {condition: versions[condition] for condition in gold_conditions})
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
    """Counts and status of one study; its gold image, the conditions only that image has and the scores given to
    it are not counted."""
    with store.session() as session:
        study = get_study(session, name)
        raters = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id))
        finished = session.scalar(
            select(func.count()).select_from(Rater).where(Rater.study_id == study.id, Rater.finished_at.is_not(None))
        )
        if study.protocol == PC:
            answers = select(func.count()).select_from(Choice).join(Rater).where(Rater.study_id == study.id)
        else:
            answers = select(func.count()).select_from(Rating).join(Stimulus).join(SourceImage)
            answers = answers.where(SourceImage.study_id == study.id, SourceImage.gold == false())
        images = [image for image in study.images if not image.gold]
        shown = {stimulus.condition_id for image in images for stimulus in image.stimuli}
        return StudySummary(
            name=study.name, public_id=study.public_id, status=study.status, created_at=study.created_at,
            images=len(images), conditions=tuple(c.name for c in study.conditions if c.id in shown),
            raters=raters or 0, finished_raters=finished or 0, ratings=session.scalar(answers) or 0,
            protocol=study.protocol, allow_tie=study.allow_tie, presentation=study.presentation,
            completion_code=study.completion_code, gold=len(images) < len(study.images),
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


#: The columns of a rater and their study that answering needs (:func:`_rater`).
RATER_COLUMNS = (
    Rater.id, Rater.token, Rater.finished_at, Study.status, Study.protocol, Study.allow_tie, Study.presentation,
    Study.completion_code,
)  # fmt: skip
#: Versions A and B of a trial.
_LEFT, _RIGHT = aliased(Stimulus), aliased(Stimulus)


def _rater(connection: Connection, study_id: str, token: str) -> Row:
    """Rater ``token`` of study ``study_id`` as :data:`RATER_COLUMNS`; :class:`SurveyError` if there is none."""
    query = select(*RATER_COLUMNS).join(Study, Rater.study_id == Study.id)
    rater = connection.execute(query.where(Rater.token == token, Study.public_id == study_id)).first()
    if rater is None:
        raise SurveyError("Unknown participant for this survey; please start again from the survey link.")
    return rater


def _count(table: type[Assignment | Rating | Trial | Choice], rater_id: int) -> ScalarSelect[int]:
    """How many of the rater's assignments (stimuli to rate), ratings, trials (pairs) or choices are stored."""
    return select(func.count()).select_from(table).where(table.rater_id == rater_id).scalar_subquery()


def study_intro(store: Store, study_id: str) -> StudyIntro:
    """Instructions and calibration examples of the study whose rater link holds ``study_id``."""
    with store.session() as session:
        study = _study_by_public_id(session, study_id)
        return StudyIntro(
            instructions=study.instructions,
            best_example=study.calibration_high,
            worst_example=study.calibration_low,
            study_open=study.status == OPEN,
            protocol=study.protocol,
            allow_tie=study.allow_tie,
            presentation=study.presentation,
        )


def validate_external_id(external_id: str) -> str:
    """A crowd platform's rater id, trimmed; :class:`SurveyError` if longer than 128 characters."""
    external_id = external_id.strip()
    if len(external_id) > EXTERNAL_ID_MAX_CHARS:
        raise SurveyError(f"A rater id has at most {EXTERNAL_ID_MAX_CHARS} characters; please check your link.")
    return external_id


def rater_token(store: Store, study_id: str, external_id: str) -> str | None:
    """The token of the rater of study ``study_id`` whom a crowd platform calls ``external_id``, if they started."""
    query = select(Rater.token).join(Study).where(Study.public_id == study_id)
    with storage_errors(), store.engine.connect() as connection:
        return connection.scalar(query.where(Rater.external_id == validate_external_id(external_id)))


def start_rater(
    store: Store, study_id: str, self_report: str = "", rng: random.Random | None = None, external_id: str = ""
) -> Progress:
    """Register a new rater with a stored random order of all stimuli (ACR) or of all pairs to compare (PC,
    :func:`pair_schedule`); return their progress.

    ``self_report`` is optional free text (trimmed to 500 characters). ``external_id`` is the rater's id on a crowd
    platform (from the rater link; at most 128 characters): a rater who started with the same id resumes instead.
    Raises :class:`SurveyError` when the link is invalid or the study is closed, :class:`StorageError` when the
    database fails.
    """
    rng = rng or random.Random()
    external_id = validate_external_id(external_id)
    if external_id and (token := rater_token(store, study_id, external_id)):
        return progress(store, study_id, token)
    try:
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
            rater_number = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id))
            rater = Rater(
                study=study, token=new_token(), self_report=self_report.strip()[:SELF_REPORT_MAX_CHARS] or None,
                external_id=external_id or None,
            )  # fmt: skip
            if study.protocol == PC:
                trials = pair_schedule([tuple(row) for row in stimuli], rater_number or 0, rng)
                rater.trials = [Trial(position=p, left_id=a, right_id=b) for p, (a, b) in enumerate(trials)]
            else:
                stimuli.sort()
                order = playlist([image_id for _, image_id in stimuli], rng)
                rater.assignments = [Assignment(position=p, stimulus_id=stimuli[i][0]) for p, i in enumerate(order)]
            session.add(rater)
    except IntegrityError:
        # The same external id started at the same moment elsewhere (a second tab); the unique constraint kept one.
        if not external_id or not (token := rater_token(store, study_id, external_id)):
            raise
        return progress(store, study_id, token)
    return progress(store, study_id, rater.token)


def progress(store: Store, study_id: str, token: str) -> Progress:
    """Where rater ``token`` stands in study ``study_id``; marks the next stimulus as shown now.

    Calling it again (a page reload) gives the same next stimulus. Raises :class:`SurveyError` for an unknown
    study or rater, :class:`StorageError` when the database fails.
    """
    with storage_errors(), store.engine.begin() as connection:
        return _advance(connection, _rater(connection, study_id, token), study_id)


def _advance(connection: Connection, rater: Row, study_id: str) -> Progress:
    """The progress of ``rater`` (:func:`_rater`); marks their next stimulus or pair as shown now, or them as finished
    when none is left."""
    if rater.protocol == PC:
        chosen = select(Choice.id).where(Choice.rater_id == rater.id, Choice.position == Trial.position)
        pending = (
            select(Trial.position, Trial.public_id, _LEFT.public_id, _RIGHT.public_id)
            .join(_LEFT, Trial.left_id == _LEFT.id)
            .join(_RIGHT, Trial.right_id == _RIGHT.id)
            .where(Trial.rater_id == rater.id, ~chosen.exists())
            .order_by(Trial.position)
        )
        items, answers = Trial, Choice
    else:
        rated = select(Rating.id).where(Rating.rater_id == rater.id, Rating.stimulus_id == Assignment.stimulus_id)
        pending = (
            select(Assignment.position, Stimulus.public_id)
            .join(Stimulus, Assignment.stimulus_id == Stimulus.id)
            .where(Assignment.rater_id == rater.id, ~rated.exists())
            .order_by(Assignment.position)
        )
        items, answers = Assignment, Rating
    next_up = connection.execute(pending.limit(1)).first()
    total, done = connection.execute(select(_count(items, rater.id), _count(answers, rater.id))).one()
    if next_up is not None:
        mark = update(items).where(items.rater_id == rater.id, items.position == next_up[0])
        connection.execute(mark.values(shown_at=utc_now()))
    elif rater.finished_at is None:
        connection.execute(update(Rater).where(Rater.id == rater.id).values(finished_at=utc_now()))
    return Progress(
        study=study_id, token=rater.token, done=done, total=total, stimulus=next_up and next_up[1],
        study_open=rater.status == OPEN, pair=tuple(next_up[2:]) if next_up and rater.protocol == PC else None,
        allow_tie=rater.allow_tie, presentation=rater.presentation,
        completion_code=None if next_up else rater.completion_code,
    )  # fmt: skip


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


def submit_rating(
    store: Store, study_id: str, token: str, stimulus_id: str, score: object, viewing: Viewing = NOT_REPORTED
) -> Progress:
    """Store rater ``token``'s score (1–5) for stimulus ``stimulus_id`` of an ACR study, with how their browser showed
    it (``viewing``), and return their new progress.

    The response time is measured on the server from when :func:`progress` last sent the stimulus. A second
    score for the same stimulus (a double click, a retry) is ignored: the first one given is kept. Raises
    :class:`SurveyError`, storing nothing, for a score off the scale, a stimulus not shown to this rater, an
    unknown rater or a closed study, and :class:`StorageError` when the database fails (locked by another writer
    beyond the busy timeout, disk full); the ratings already stored are kept.
    """
    value = validate_score(score)
    with storage_errors():
        return _submit(store, study_id, token, ACR, stimulus_id, value, viewing)


def submit_choice(
    store: Store, study_id: str, token: str, trial_id: str, choice: object, viewing: Viewing = NOT_REPORTED
) -> Progress:
    """Store rater ``token``'s choice for trial ``trial_id`` of a PC study and return their new progress.

    ``choice`` is :data:`~survey.db.LEFT` (version A is better), :data:`~survey.db.RIGHT` (version B is) or, where the
    study allows ties, :data:`~survey.db.TIE`. Exactly one choice per trial is kept, the first one given; viewing,
    response times and errors as for :func:`submit_rating`.
    """
    with storage_errors():
        return _submit(store, study_id, token, PC, trial_id, choice, viewing)


def _submit(
    store: Store, study_id: str, token: str, protocol: str, item_id: str, value: object, viewing: Viewing
) -> Progress:
    """Store a rater's answer ``value`` (a score or a choice, by ``protocol``) to ``item_id`` (a stimulus or a trial),
    unless they answered it already, and advance them; one transaction."""
    try:
        with store.engine.begin() as connection:
            rater = _rater(connection, study_id, token)
            if rater.status != OPEN:
                raise SurveyError("This survey is closed; no more ratings are being collected. Thank you!")
            if rater.protocol != protocol:
                asks = "a choice between two versions" if rater.protocol == PC else "a score from 1 to 5"
                raise SurveyError(f"This survey asks for {asks}.")
            if protocol == PC:
                answer = _new_choice(connection, rater.id, item_id, validate_choice(value, rater.allow_tie))
            else:
                answer = _new_rating(connection, rater.id, item_id, int(value))  # validated by submit_rating
            if answer is not None:
                connection.execute(answer.values(**dataclasses.asdict(viewing)))
            return _advance(connection, rater, study_id)
    except IntegrityError:
        # A concurrent identical submission committed first; the unique constraint kept exactly one.
        with store.engine.connect() as connection:
            if not _answered(connection, token, item_id):
                raise
    return progress(store, study_id, token)


def _elapsed_ms(shown_at: datetime) -> int:
    return max(round((utc_now() - shown_at).total_seconds() * 1000), 0)


def _new_rating(connection: Connection, rater_id: int, stimulus_id: str, score: int) -> Insert | None:
    """The insert of the rating, ``None`` if the rater already rated that stimulus."""
    assignment = connection.execute(
        select(Assignment.stimulus_id, Assignment.shown_at, Rating.id)
        .join(Stimulus, Assignment.stimulus_id == Stimulus.id)
        .outerjoin(Rating, (Rating.rater_id == Assignment.rater_id) & (Rating.stimulus_id == Assignment.stimulus_id))
        .where(Assignment.rater_id == rater_id, Stimulus.public_id == stimulus_id)
    ).first()
    if assignment is None or assignment.shown_at is None:
        raise SurveyError("That image is not one you were shown; please rate the image on your screen.")
    if assignment.id is not None:
        return None
    return insert(Rating).values(
        rater_id=rater_id, stimulus_id=assignment.stimulus_id, score=score, response_ms=_elapsed_ms(assignment.shown_at)
    )


def _new_choice(connection: Connection, rater_id: int, trial_id: str, choice: str) -> Insert | None:
    """The insert of the choice, ``None`` if the rater already answered that trial."""
    trial = connection.execute(
        select(Trial.position, Trial.shown_at, Choice.id)
        .outerjoin(Choice, (Choice.rater_id == Trial.rater_id) & (Choice.position == Trial.position))
        .where(Trial.rater_id == rater_id, Trial.public_id == trial_id)
    ).first()
    if trial is None or trial.shown_at is None:
        raise SurveyError("That pair is not one you were shown; please choose between the versions on your screen.")
    if trial.id is not None:
        return None
    return insert(Choice).values(
        rater_id=rater_id, position=trial.position, choice=choice, response_ms=_elapsed_ms(trial.shown_at)
    )


def _answered(connection: Connection, token: str, item_id: str) -> bool:
    """Whether rater ``token`` has an answer stored for stimulus or trial ``item_id``."""
    rating = select(Rating.id).join(Stimulus).join(Rater).where(Rater.token == token, Stimulus.public_id == item_id)
    choice = (
        select(Choice.id)
        .join(Trial, (Choice.rater_id == Trial.rater_id) & (Choice.position == Trial.position))
        .join(Rater, Choice.rater_id == Rater.id)
        .where(Rater.token == token, Trial.public_id == item_id)
    )
    return connection.scalar(rating) is not None or connection.scalar(choice) is not None
