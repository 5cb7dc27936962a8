"""A rater's session: their stored random order and where they stand; their answers are :mod:`survey.answers`.

A study follows one of two protocols (:data:`~survey.db.PROTOCOLS`): absolute category rating (ACR: one stimulus
at a time, a score from 1 to 5) or pair comparison (PC, 2AFC: two versions of one image, the rater picks the better
one, or "no difference" where the study allows it). The rater side is three calls: :func:`start_rater` (a new
anonymous rater and their stored random order, :mod:`survey.schedule`: every stimulus for ACR, every pair of
conditions on every image for PC), :func:`progress` (where a rater is; resuming is just calling it again) and
:func:`survey.answers.submit_rating` (ACR) or :func:`survey.answers.submit_choice` (PC).

A rater is their random token: whoever holds it continues their session, and nothing else does. A rater link from a
crowd platform also carries the rater's id there (``external_id``), stored with the rater; it names them, it does not
let anyone in: a second browser with the same id and without the token is refused (:func:`resume_token`) until the
study's owner resets the rater (:func:`survey.studies.reset_rater`). A study may cap its raters (``max_raters``) and
refuse answers given sooner than ``min_view_ms`` after the stimulus was sent; its completion code is shown to raters
who finished. ACR studies may hold gold items (:data:`~survey.db.GOLD_RANGES`).
"""

from __future__ import annotations

import itertools
import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Row, ScalarSelect, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from survey.crowd import qualification_problem
from survey.db import (
    ACR,
    EXTERNAL_ID_MAX_CHARS,
    FLIP,
    OPEN,
    PC,
    TRAINING,
    Assignment,
    Choice,
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
from survey.errors import StudyUnavailable, SurveyError, storage_errors
from survey.schedule import pair_schedule, playlist
from survey.screening import load_answers, own_answer_reasons

SELF_REPORT_MAX_CHARS = 500
CLOSED_TEXT = "This survey is closed. Thank you for your interest!"
FULL_TEXT = "This survey is full: it has all the raters it needs. Thank you for your interest!"
ID_TAKEN = (
    "This rater id has already started this survey in another browser. Continue there, or ask the study's owner "
    "to reset it."
)


@dataclass(frozen=True)
class Progress:
    """Where a rater stands: ``done`` of ``total`` stimuli rated (ACR) or pairs compared (PC).

    ``stimulus`` is the opaque id of what to answer next, ``None`` once everything is answered: a stimulus (ACR)
    or a trial (PC), whose two stimuli ``pair`` holds as (version A, version B). ``allow_tie`` and ``presentation``
    say how a PC study asks; ``min_view_ms`` is how long after it was sent an answer is accepted, in milliseconds;
    ``completion_code`` is the study's, once the rater has finished. Nothing here tells which condition a stimulus
    shows.
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
    min_view_ms: int = 0
    completion_code: str | None = None
    #: Whether ``stimulus`` is an item of the training round (answered, never analysed).
    training: bool = False
    #: Why a finished rater gets no completion code (a study that gives it only to raters who pass their checks).
    failed_checks: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.stimulus is None


@dataclass(frozen=True)
class StudyIntro:
    """What a rater sees before rating: instructions and the opaque ids of the two calibration examples' PNGs; whether
    the study is open, and whether it is full (no place for a new rater)."""

    instructions: str
    best_example: str
    worst_example: str
    study_open: bool
    full: bool = False
    protocol: str = ACR
    allow_tie: bool = False
    presentation: str = FLIP


def _study_by_public_id(session: Session, study_id: str) -> Study:
    study = session.scalar(select(Study).where(Study.public_id == study_id))
    if study is None:
        raise SurveyError("This survey link is not valid. Please check the address you were given.")
    return study


#: The columns of a rater and their study that answering needs (:func:`rater_row`).
RATER_COLUMNS = (
    Rater.id, Rater.token, Rater.finished_at, Study.status, Study.protocol, Study.allow_tie, Study.presentation,
    Study.min_view_ms, Study.completion_code, Study.training_pause_s, Study.withhold_code, Study.id.label("study_pk"),
)  # fmt: skip
#: Versions A and B of a trial.
_LEFT, _RIGHT = aliased(Stimulus), aliased(Stimulus)


def rater_row(connection: Connection, study_id: str, token: str) -> Row:
    """Rater ``token`` of study ``study_id`` as :data:`RATER_COLUMNS`; :class:`SurveyError` if there is none."""
    query = select(*RATER_COLUMNS).join(Study, Rater.study_id == Study.id)
    rater = connection.execute(query.where(Rater.token == token, Study.public_id == study_id)).first()
    if rater is None:
        raise SurveyError("Unknown participant for this survey; please start again from the survey link.")
    return rater


def _count(table: type[Assignment | Rating | Trial | Choice], rater_id: int) -> ScalarSelect[int]:
    """How many of the rater's assignments (stimuli to rate), ratings, trials (pairs) or choices are stored."""
    return select(func.count()).select_from(table).where(table.rater_id == rater_id).scalar_subquery()


def _is_full(session: Session, study: Study) -> bool:
    """Whether ``study`` has as many raters as its cap (never without one)."""
    if study.max_raters is None:
        return False
    raters = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id)) or 0
    return raters >= study.max_raters


def _take_turns_starting(session: Session, study: Study) -> None:
    """Make the raters starting ``study`` at the same moment, in any process, take turns until the session commits, so
    that :func:`_is_full` after it counts every earlier start: an UPDATE that changes nothing locks the study's row
    (PostgreSQL) or the database (SQLite: a write transaction, waited for within the busy timeout)."""
    session.execute(update(Study).where(Study.id == study.id).values(max_raters=Study.max_raters))
    session.refresh(study)


def study_intro(store: Store, study_id: str) -> StudyIntro:
    """Instructions and calibration examples of the study whose rater link holds ``study_id``."""
    with store.session() as session:
        study = _study_by_public_id(session, study_id)
        return StudyIntro(
            instructions=study.instructions,
            best_example=study.calibration_high,
            worst_example=study.calibration_low,
            study_open=study.status == OPEN,
            full=_is_full(session, study),
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


def resume_token(store: Store, study_id: str, token: str, external_id: str) -> str:
    """The token of the rater of study ``study_id`` that a visitor holding ``token`` ("" if none) and arriving with the
    crowd platform's id ``external_id`` ("" if none) continues, or "" when they are someone new.

    Without an external id that is ``token`` itself. With one that no rater of the study has, "" (a new rater; a token
    of another rater in the same browser is not theirs). With one that a rater has, ``token`` must be that rater's:
    else :class:`SurveyError` (:data:`ID_TAKEN`), since knowing someone's id must not give their session.
    """
    external_id = validate_external_id(external_id)
    if not external_id:
        return token
    owner = _token_of(store, study_id, external_id)
    if owner is None:
        return ""
    if not secrets.compare_digest(owner.encode(), token.encode()):
        raise SurveyError(ID_TAKEN)
    return owner


def _token_of(store: Store, study_id: str, external_id: str) -> str | None:
    """The token of the rater of study ``study_id`` whom a crowd platform calls ``external_id``, if they started."""
    query = select(Rater.token).join(Study).where(Study.public_id == study_id, Rater.external_id == external_id)
    with storage_errors(), store.engine.connect() as connection:
        return connection.scalar(query)


def start_rater(
    store: Store,
    study_id: str,
    self_report: str = "",
    rng: random.Random | None = None,
    external_id: str = "",
    window: Window = (None, None, None),
) -> Progress:
    """Register a new rater with a stored random order of all stimuli (ACR) or of all pairs to compare (PC,
    :func:`pair_schedule`); return their progress.

    ``self_report`` is optional free text (trimmed to 500 characters). ``external_id`` is the rater's id on a crowd
    platform (from the rater link; at most 128 characters), unique within the study: an id that has started already
    is refused with :data:`ID_TAKEN` (the rater resumes with their token instead, :func:`resume_token`). Raises
    :class:`StudyUnavailable` when the study is closed or full, :class:`SurveyError` when the link is invalid or
    the browser's ``window`` (CSS width, CSS height, device pixel ratio, as it reported them) fails the study's
    qualification (:func:`survey.crowd.qualification_problem`), :class:`StorageError` when the database fails.
    A study with a training round gives its items first, in a random order (PC: the first ``training_items``
    pairs of the training photo's versions, random sides), then the study's order.
    """
    rng = rng or random.Random()
    external_id = validate_external_id(external_id)
    try:
        with storage_errors(), store.session() as session, session.begin():
            study = _study_by_public_id(session, study_id)
            _take_turns_starting(session, study)
            if study.status != OPEN:
                raise StudyUnavailable(CLOSED_TEXT)
            if _is_full(session, study):
                raise StudyUnavailable(FULL_TEXT)
            taken = select(Rater.id).where(Rater.study_id == study.id, Rater.external_id == external_id)
            if external_id and session.scalar(taken) is not None:
                raise SurveyError(ID_TAKEN)
            _check_window(session, study, window)
            rows = session.execute(
                select(Stimulus.id, Stimulus.image_id, SourceImage.role)
                .join(SourceImage)
                .where(SourceImage.study_id == study.id)
                .order_by(Stimulus.image_id, Stimulus.condition_id)
            ).all()
            stimuli = [(stimulus, image) for stimulus, image, role in rows if role != TRAINING]
            training = sorted(stimulus for stimulus, _, role in rows if role == TRAINING)
            rater_number = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id))
            rater = Rater(
                study=study, token=new_token(), self_report=self_report.strip()[:SELF_REPORT_MAX_CHARS] or None,
                external_id=external_id or None,
            )  # fmt: skip
            if study.protocol == PC:
                pairs = list(itertools.combinations(training, 2))[: study.training_items]
                trials = [pair[:: rng.choice((1, -1))] for pair in rng.sample(pairs, len(pairs))]
                trials += pair_schedule(stimuli, rater_number or 0, rng)
                rater.trials = [Trial(position=p, left_id=a, right_id=b) for p, (a, b) in enumerate(trials)]
            else:
                stimuli.sort()
                order = rng.sample(training, len(training))
                order += [stimuli[i][0] for i in playlist([image_id for _, image_id in stimuli], rng)]
                rater.assignments = [Assignment(position=p, stimulus_id=s) for p, s in enumerate(order)]
            session.add(rater)
    except IntegrityError as error:
        # The same rater id started at the same moment elsewhere (a second tab); the unique constraint kept one.
        if not (external_id and _token_of(store, study_id, external_id)):
            raise
        raise SurveyError(ID_TAKEN) from error
    return progress(store, study_id, rater.token)


#: What a rater's browser reported of its window: CSS width and height, device pixel ratio (``None`` where it did not).
Window = tuple[int | None, int | None, float | None]


def _check_window(session: Session, study: Study, window: Window) -> None:
    """:class:`SurveyError` saying why, when ``study`` qualifies raters by their window and ``window`` cannot show
    its largest stimulus at 1:1 in device pixels."""
    if not study.qualification:
        return
    largest = session.execute(
        select(func.max(SourceImage.width), func.max(SourceImage.height)).where(SourceImage.study_id == study.id)
    ).one()
    if problem := qualification_problem(tuple(largest), window[:2], window[2]):
        raise SurveyError(problem)


def progress(store: Store, study_id: str, token: str) -> Progress:
    """Where rater ``token`` stands in study ``study_id``; marks the next stimulus as shown now.

    Calling it again (a page reload) gives the same next stimulus. Raises :class:`SurveyError` for an unknown
    study or rater, :class:`StorageError` when the database fails.
    """
    with storage_errors(), store.engine.begin() as connection:
        return advance(connection, rater_row(connection, study_id, token), study_id)


def advance(connection: Connection, rater: Row, study_id: str) -> Progress:
    """The progress of ``rater`` (:func:`rater_row`); marks their next stimulus or pair as shown now, or them as
    finished when none is left. A rater back after a pause longer than the study's ``training_pause_s`` does the
    training round again first (:func:`_renew_training`)."""
    if rater.protocol == PC:
        chosen = select(Choice.id).where(Choice.rater_id == rater.id, Choice.position == Trial.position)
        pending = (
            select(Trial.position, Trial.public_id, SourceImage.role, _LEFT.public_id, _RIGHT.public_id)
            .join(_LEFT, Trial.left_id == _LEFT.id)
            .join(_RIGHT, Trial.right_id == _RIGHT.id)
            .join(SourceImage, _LEFT.image_id == SourceImage.id)
            .where(Trial.rater_id == rater.id, ~chosen.exists())
            .order_by(Trial.position)
        )
        items, answers = Trial, Choice
    else:
        rated = select(Rating.id).where(Rating.rater_id == rater.id, Rating.stimulus_id == Assignment.stimulus_id)
        pending = (
            select(Assignment.position, Stimulus.public_id, SourceImage.role)
            .join(Stimulus, Assignment.stimulus_id == Stimulus.id)
            .join(SourceImage, Stimulus.image_id == SourceImage.id)
            .where(Assignment.rater_id == rater.id, ~rated.exists())
            .order_by(Assignment.position)
        )
        items, answers = Assignment, Rating
    if rater.training_pause_s and rater.finished_at is None:
        _renew_training(connection, rater)
    next_up = connection.execute(pending.limit(1)).first()
    total, done = connection.execute(select(_count(items, rater.id), _count(answers, rater.id))).one()
    if next_up is not None:
        mark = update(items).where(items.rater_id == rater.id, items.position == next_up[0])
        connection.execute(mark.values(shown_at=utc_now()))
    elif rater.finished_at is None:
        connection.execute(update(Rater).where(Rater.id == rater.id).values(finished_at=utc_now()))
    withheld = next_up is None and rater.withhold_code and rater.completion_code  # a code to give or withhold
    failed = _failed_checks(connection, rater) if withheld else []
    return Progress(
        study=study_id, token=rater.token, done=done, total=total, stimulus=next_up and next_up[1],
        study_open=rater.status == OPEN, pair=tuple(next_up[3:]) if next_up and rater.protocol == PC else None,
        allow_tie=rater.allow_tie, presentation=rater.presentation, min_view_ms=rater.min_view_ms,
        completion_code=None if next_up or failed else rater.completion_code,
        training=bool(next_up and next_up[2] == TRAINING), failed_checks=tuple(failed),
    )  # fmt: skip


def _failed_checks(connection: Connection, rater: Row) -> list[str]:
    """Why the answers of ``rater`` fail the checks that need no other rater, in words
    (:func:`survey.screening.own_answer_reasons`); empty when they pass."""
    answers = load_answers(connection, rater.study_pk, rater.protocol, rater=rater.id)
    return own_answer_reasons(answers, rater.protocol, rater.min_view_ms)


def _renew_training(connection: Connection, rater: Row) -> None:
    """Delete the training answers of ``rater`` if their last answer is older than the study's ``training_pause_s``,
    so that :func:`advance` gives the training round again (ITU-T P.808: training expires after a long pause)."""
    answers = Choice if rater.protocol == PC else Rating
    last = connection.scalar(select(func.max(answers.created_at)).where(answers.rater_id == rater.id))
    if last is None or utc_now() - last <= timedelta(seconds=rater.training_pause_s):
        return
    training = select(Stimulus.id).join(SourceImage).where(SourceImage.role == TRAINING)
    if rater.protocol == PC:
        positions = select(Trial.position).where(Trial.rater_id == rater.id, Trial.left_id.in_(training))
        connection.execute(delete(Choice).where(Choice.rater_id == rater.id, Choice.position.in_(positions)))
    else:
        connection.execute(delete(Rating).where(Rating.rater_id == rater.id, Rating.stimulus_id.in_(training)))
