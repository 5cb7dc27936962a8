"""Creating a study (:func:`create_study`): every option checked and every method loaded before anything is written,
then each image's versions precomputed as PNGs (:mod:`survey.stimuli`) and the rows stored in one transaction.

A study's images are ground truth, shown in versions, one per condition (a computed method, a folder of precomputed
outputs, the hidden reference, the low anchor), under one of two protocols (:data:`~survey.db.PROTOCOLS`): absolute
category rating (ACR, scores 1–5, optionally with gold items) or pair comparison (PC, 2AFC). Nothing is left behind
when creation fails. The catalogue of studies is :mod:`survey.studies`.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sr_app.images import list_images
from sr_app.methods import Method, Settings
from sr_app.outputs import read_outputs
from sr_app.weights import WEIGHTS_DIR
from survey.crowd import NO_CROWD_CHECKS, TRAP_SCORES, CrowdChecks, broken_version, trap_version
from survey.db import (
    ACR,
    BROKEN,
    COMPLETION_CODE_MAX_CHARS,
    FLIP,
    GOLD,
    GOLD_RANGES,
    NEAREST,
    OPEN,
    PC,
    PRESENTATIONS,
    PROTOCOLS,
    REFERENCE,
    TRAINING,
    TRAP,
    Condition,
    SourceImage,
    Stimulus,
    Store,
    Study,
    new_token,
)
from survey.errors import SurveyError
from survey.private_files import PRIVATE_DIR, private_dir
from survey.stimuli import (
    DEFAULT_GOLD_IMAGE,
    DEFAULT_TRAINING_IMAGE,
    GOLD_PREFIX,
    TRAINING_PREFIX,
    TRAP_PREFIX,
    Conditions,
    Crop,
    Precomputed,
    calibration_examples,
    fixed_versions,
    ground_truth,
    outside_truth,
    png_bytes,
    study_methods,
)
from survey.studies import StudySummary, summarize

#: The least viewing time of a study made by ``python -m survey create`` unless it says otherwise, in milliseconds.
DEFAULT_MIN_VIEW_MS = 1000
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
    max_raters: int | None = None,
    min_view_ms: int = 0,
    crowd: CrowdChecks = NO_CROWD_CHECKS,
    training_image: str | Path | None = None,
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
            and left out of the analysis; a rater who scores one outside :data:`~survey.db.GOLD_RANGES` is rejected.
        max_raters: at most this many raters may start (at least 1); no cap by default.
        min_view_ms: an answer given sooner than this many milliseconds after its stimulus was sent is refused; 0
            (none) by default here, :data:`DEFAULT_MIN_VIEW_MS` from the command line.
        crowd: the crowd checks (:class:`survey.crowd.CrowdChecks`): trapping items made from the study's images,
            a training round made from ``training_image`` (default scikit-image's astronaut) by the original, the
            nearest-neighbour ×4 and the computed methods, the window qualification, the code only for passing raters.

    Conditions are the computed methods, then the output folders by name, then the reference and the anchor.

    Raises:
        SurveyError: bad name, methods, images, crop or options, or neither methods nor outputs; ``WeightsError``
        when a method's weights are missing; ``OutputsError`` or ``ImageError`` naming the file when an output folder
        cannot be used. Everything is checked before anything is written, and nothing is written when creation fails.
    """
    name, completion_code = _checked_options(name, protocol, allow_tie, presentation, gold, completion_code)
    _check_limits(max_raters, min_view_ms)
    computed = _computed_methods(methods, outputs)
    _check_name_free(store, name)
    paths = _study_images(images_dir)
    precomputed = _read_precomputed(outputs, paths, computed)
    _check_training(protocol, crowd.training_items, len(computed))
    gold_source = outside_truth(gold_image, DEFAULT_GOLD_IMAGE, GOLD_PREFIX, paths[0], crop) if gold else None
    training_source = (
        outside_truth(training_image, DEFAULT_TRAINING_IMAGE, TRAINING_PREFIX, paths[0], crop)
        if crowd.training_items
        else None
    )
    settings = Settings(device=device, weights_dir=weights_dir)
    conditions = _resolve_conditions(protocol, computed, precomputed, settings, reference=reference, anchors=anchors)
    study = _new_study(name, instructions, protocol, allow_tie, presentation, completion_code, conditions)
    study.max_raters, study.min_view_ms = max_raters, min_view_ms
    study.training_items, study.training_pause_s = crowd.training_items, crowd.training_pause_s
    study.qualification, study.withhold_code = crowd.qualification, crowd.withhold_code
    with _stimuli_folder(store, study):
        _make_stimuli(store, study, conditions, paths, crop, calibration, gold_source)
        _add_traps(store, study, paths, crop, crowd.traps)
        if training_source:
            _add_training(store, study, conditions, training_source)
        _write_rows(store, study)
    return summarize(store, name)


def _checked_options(
    name: str, protocol: str, allow_tie: bool, presentation: str, gold: bool, completion_code: str | None
) -> tuple[str, str | None]:
    """The study's name and completion code, trimmed (no code: ``None``); :class:`SurveyError` for an empty name, an
    unknown protocol or presentation, options the protocol does not have, or a completion code too long."""
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
    return name, completion_code


def _check_limits(max_raters: int | None, min_view_ms: int) -> None:
    """:class:`SurveyError` unless ``max_raters`` is None or at least 1 and ``min_view_ms`` is at least 0."""
    if max_raters is not None and max_raters < 1:
        raise SurveyError(f"A study needs room for at least 1 rater; got a cap of {max_raters}.")
    if min_view_ms < 0:
        raise SurveyError(f"The minimum viewing time cannot be negative; got {min_view_ms} ms.")


def _computed_methods(methods: Sequence[str], outputs: str | Path | None) -> list[Method]:
    """The methods to compute (:func:`~survey.stimuli.study_methods`); :class:`SurveyError` when there are none and
    no folder of outputs either."""
    computed = study_methods(methods)
    if not computed and outputs is None:
        raise SurveyError(
            "A study needs methods to compare: give methods (--methods), a folder of their outputs (--outputs), "
            "or both."
        )
    return computed


def _name_taken(name: str) -> SurveyError:
    """The error for a study name already taken."""
    return SurveyError(f"A study named {name!r} already exists; pick another name.")


def _check_name_free(store: Store, name: str) -> None:
    """:class:`SurveyError` if a study called ``name`` exists."""
    with store.session() as session:
        if session.scalar(select(Study.id).where(Study.name == name)) is not None:
            raise _name_taken(name)


def _study_images(images_dir: str | Path) -> list[Path]:
    """The images of ``images_dir``; :class:`SurveyError` unless there are at least 2, with names that differ by
    more than their extension."""
    paths = list_images(images_dir)
    stems = [path.stem for path in paths]
    if len(paths) < 2:
        raise SurveyError(
            f"{images_dir} holds {len(paths)} image(s); a study needs at least 2 so that two versions of one image "
            "are never shown in a row."
        )
    if len(set(stems)) != len(stems):
        raise SurveyError(f"Image names in {images_dir} must differ by more than their extension.")
    return paths


def _read_precomputed(outputs: str | Path | None, paths: list[Path], computed: list[Method]) -> Precomputed:
    """The output files of the method folders in ``outputs`` (none without it), by folder and image stem, checked
    against the study's images ``paths`` (:func:`sr_app.outputs.read_outputs`); no folder may take the name of a
    computed method or a built-in condition."""
    if outputs is None:
        return {}
    sizes = {path.stem: ground_truth(path)[1].shape[:2] for path in paths}  # outputs are of the uncut images
    return read_outputs(outputs, sizes, reserved=[*(m.name for m in computed), REFERENCE, NEAREST])


def _resolve_conditions(
    protocol: str, computed: list[Method], precomputed: Precomputed, settings: Settings, reference: bool, anchors: bool
) -> Conditions:
    """Load the computed methods and name the study's conditions: the computed methods, the output folders, then the
    reference and the anchor if asked; :class:`SurveyError` if a pair comparison would have fewer than 2."""
    upscalers = {method.name: method.load(settings) for method in computed}
    names = [*upscalers, *precomputed, *([REFERENCE] if reference else []), *([NEAREST] if anchors else [])]
    if protocol == PC and len(names) < 2:
        raise SurveyError(f"A pair comparison needs at least 2 conditions to compare; this one has {names}.")
    return Conditions(names, upscalers, precomputed)


def _new_study(
    name: str,
    instructions: str | None,
    protocol: str,
    allow_tie: bool,
    presentation: str,
    completion_code: str | None,
    conditions: Conditions,
) -> Study:
    """The row of a new open study with its conditions, new random public id and calibration tokens, and the default
    instructions of its protocol unless ``instructions`` are given; not stored yet."""
    if instructions is None:
        instructions = DEFAULT_PC_INSTRUCTIONS if protocol == PC else DEFAULT_INSTRUCTIONS
    study = Study(
        public_id=new_token(), name=name, instructions=instructions.strip(), status=OPEN,
        calibration_high=new_token(), calibration_low=new_token(), protocol=protocol, allow_tie=allow_tie,
        presentation=presentation, completion_code=completion_code,
    )  # fmt: skip
    study.conditions = [Condition(name=c) for c in conditions.names]
    return study


@contextlib.contextmanager
def _stimuli_folder(store: Store, study: Study) -> Iterator[None]:
    """Create the folder of ``study``'s PNGs for the block and remove it if the block fails: a study of the same name
    stored meanwhile (the rows' unique name) as :class:`SurveyError`, any other failure as it is."""
    folder = store.study_dir(study.public_id)
    private_dir(store.stimuli_dir)
    folder.mkdir(mode=PRIVATE_DIR)
    try:
        yield
    except IntegrityError as error:
        shutil.rmtree(folder)
        raise _name_taken(study.name) from error
    except BaseException:
        shutil.rmtree(folder)
        raise


def _make_stimuli(
    store: Store,
    study: Study,
    conditions: Conditions,
    paths: list[Path],
    crop: Crop | None,
    calibration: str | Path | None,
    gold_source: tuple[str, tuple[np.ndarray, np.ndarray]] | None,
) -> None:
    """Write ``study``'s PNGs, the calibration examples, every condition's version of every image in ``paths`` and,
    with a ``gold_source`` (name, (LR, HR)), the gold items; add the images and their stimuli to ``study``."""
    best, worst = calibration_examples(calibration, crop)
    store.png_path(study.public_id, study.calibration_high).write_bytes(png_bytes(best))
    store.png_path(study.public_id, study.calibration_low).write_bytes(png_bytes(worst))
    for path in paths:
        hr, rgbs = conditions.versions(path, crop)
        _add_image(store, study, SourceImage(name=path.stem, width=hr.shape[1], height=hr.shape[0]), hr, rgbs)
    if gold_source:
        gold_name, (lr, hr) = gold_source
        versions = fixed_versions(lr, hr)
        image = SourceImage(name=gold_name, width=hr.shape[1], height=hr.shape[0], role=GOLD)
        _add_image(store, study, image, hr, {condition: versions[condition] for condition in GOLD_RANGES})


def _check_training(protocol: str, items: int, computed: int) -> None:
    """:class:`SurveyError` if a training round of ``items`` stimuli (ACR) or pairs (PC) needs more versions than the
    original, the nearest-neighbour ×4 and the ``computed`` methods make."""
    versions = 2 + computed
    most = versions if protocol == ACR else versions * (versions - 1) // 2
    if items > most:
        raise SurveyError(
            f"A training round of {items} {'photos' if protocol == ACR else 'pairs'} needs more versions of the "
            f"training photo than this study makes (at most {most}: the original, nearest-neighbour ×4 and the "
            f"{computed} computed method(s))."
        )


def _add_traps(store: Store, study: Study, paths: list[Path], crop: Crop | None, count: int) -> None:
    """Add ``count`` trapping items to ``study``, made from its images in turn (:mod:`survey.crowd`): ACR, the
    original with an instruction to give one of :data:`~survey.crowd.TRAP_SCORES`; PC, the original beside a broken
    version of it."""
    for k in range(count):
        path = paths[k % len(paths)]
        hr = ground_truth(path, crop)[1]
        image = SourceImage(name=f"{TRAP_PREFIX}{k}/{path.stem}", width=hr.shape[1], height=hr.shape[0], role=TRAP)
        if study.protocol == PC:
            _add_image(store, study, image, hr, {REFERENCE: hr, BROKEN: broken_version(hr, seed=k)})
        else:
            score = TRAP_SCORES[k % len(TRAP_SCORES)]
            _add_image(store, study, image, hr, {TRAP: trap_version(hr, score)})
            image.stimuli[-1].expected_score = score


def _add_training(
    store: Store, study: Study, conditions: Conditions, source: tuple[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    """Add the training photo's versions to ``study``: the original, nearest-neighbour ×4, then the computed methods'
    (top and bottom of the scale first), as many as its training round needs (PC: enough for that many pairs)."""
    name, (lr, hr) = source
    needed = study.training_items
    if study.protocol == PC:
        needed = next(k for k in itertools.count(2) if k * (k - 1) // 2 >= study.training_items)
    fixed = fixed_versions(lr, hr)
    chosen = [*fixed, *conditions.upscalers][:needed]  # only the methods used run
    versions = {c: fixed[c] if c in fixed else conditions.upscalers[c](lr) for c in chosen}
    image = SourceImage(name=name, width=hr.shape[1], height=hr.shape[0], role=TRAINING)
    _add_image(store, study, image, hr, versions)


def _add_image(store: Store, study: Study, image: SourceImage, hr: np.ndarray, rgbs: dict[str, np.ndarray]) -> None:
    """Write the versions ``rgbs`` (by condition) of one image whose original is ``hr`` and add the image, with a
    stimulus for each version, to ``study``."""
    by_name = {condition.name: condition for condition in study.conditions}
    for name in [name for name in rgbs if name not in by_name]:  # a condition of gold, trapping or training items
        by_name[name] = Condition(name=name)
        study.conditions.append(by_name[name])
    for condition, rgb in rgbs.items():
        if rgb.shape != hr.shape:
            raise RuntimeError(f"{condition} made {rgb.shape} from {image.name}, expected {hr.shape}")
        stimulus = Stimulus(public_id=new_token(), condition=by_name[condition])
        store.png_path(study.public_id, stimulus.public_id).write_bytes(png_bytes(rgb))
        image.stimuli.append(stimulus)
    study.images.append(image)


def _write_rows(store: Store, study: Study) -> None:
    """Store ``study`` with its conditions, images and stimuli in one transaction."""
    with store.session() as session, session.begin():
        session.add(study)
