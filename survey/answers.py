"""A rater's answers: a score (ACR, :func:`submit_rating`) or a choice (PC, :func:`submit_choice`), checked and
stored exactly once, with how the rater's browser showed the photo (:class:`Viewing`).

An answer is refused, storing nothing, when it is off the scale or not one of the study's choices, given sooner than
the study's ``min_view_ms`` after its stimulus or pair was sent, to something not shown to this rater, by an unknown
rater, or to a closed study. The response time is measured on the server from when :func:`survey.raters.progress`
last sent the stimulus or pair.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Insert, insert, select
from sqlalchemy.exc import IntegrityError

from survey.db import (
    ACR,
    ACR_LABELS,
    LEFT,
    MAX_SCORE,
    MIN_SCORE,
    OPEN,
    PC,
    RIGHT,
    TIE,
    Assignment,
    Choice,
    Rater,
    Rating,
    Stimulus,
    Store,
    Trial,
    utc_now,
)
from survey.errors import SurveyError, storage_errors
from survey.raters import Progress, advance, progress, rater_row

#: What a browser may report about how it showed a photo (:class:`Viewing`): the accepted range of each value.
VIEWING_RANGES: dict[str, tuple[float, float]] = {
    "viewport_width": (1, 100_000), "viewport_height": (1, 100_000), "device_pixel_ratio": (0.01, 100),
    "scale": (0.001, 1000), "display_ms": (0, 86_400_000),
}  # fmt: skip


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


def validate_score(score: object) -> int:
    """``score`` itself if it is an ``int`` on the ACR scale (1 to 5); :class:`SurveyError` for anything else, floats
    (``4.0``), strings (``"4"``) and booleans included."""
    if isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
        scale = ", ".join(f"{s} {label}" for s, label in sorted(ACR_LABELS.items()))
        raise SurveyError(f"A score must be a whole number on the scale {scale}; got {score!r}.")
    return score


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

    The response time is measured on the server from when :func:`progress` last sent the stimulus; a score given
    sooner than the study's ``min_view_ms`` after that is refused. A second score for the same stimulus (a double
    click, a retry) is ignored: the first one given is kept. Raises :class:`SurveyError`, storing nothing, for a score
    off the scale, one given too soon, a stimulus not shown to this rater, an unknown rater or a closed study, and
    :class:`StorageError` when the database fails (locked by another writer beyond the busy timeout, disk full); the
    ratings already stored are kept.
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
            rater = rater_row(connection, study_id, token)
            if rater.status != OPEN:
                raise SurveyError("This survey is closed; no more ratings are being collected. Thank you!")
            if rater.protocol != protocol:
                asks = "a choice between two versions" if rater.protocol == PC else "a score from 1 to 5"
                raise SurveyError(f"This survey asks for {asks}.")
            if protocol == PC:
                choice = validate_choice(value, rater.allow_tie)
                answer = _new_choice(connection, rater.id, item_id, choice, rater.min_view_ms)
            else:
                answer = _new_rating(connection, rater.id, item_id, int(value), rater.min_view_ms)  # validated
            if answer is not None:
                connection.execute(answer.values(**dataclasses.asdict(viewing)))
            return advance(connection, rater, study_id)
    except IntegrityError:
        # A concurrent identical submission committed first; the unique constraint kept exactly one.
        with store.engine.connect() as connection:
            if not _answered(connection, token, item_id):
                raise
    return progress(store, study_id, token)


def _response_ms(shown_at: datetime, min_view_ms: int, what: str) -> int:
    """Milliseconds since ``shown_at``; :class:`SurveyError` if fewer than ``min_view_ms`` (``what`` was shown: "the
    photo", "both versions")."""
    elapsed = max(round((utc_now() - shown_at).total_seconds() * 1000), 0)
    if elapsed < min_view_ms:
        raise SurveyError(f"Please look at {what} for at least {min_view_ms / 1000:g} s before answering.")
    return elapsed


def _new_rating(connection: Connection, rater_id: int, stimulus_id: str, score: int, min_view_ms: int) -> Insert | None:
    """The insert of the rating, ``None`` if the rater already rated that stimulus; :class:`SurveyError` if it was
    shown less than ``min_view_ms`` ago."""
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
    response_ms = _response_ms(assignment.shown_at, min_view_ms, "the photo")
    return insert(Rating).values(
        rater_id=rater_id, stimulus_id=assignment.stimulus_id, score=score, response_ms=response_ms
    )


def _new_choice(connection: Connection, rater_id: int, trial_id: str, choice: str, min_view_ms: int) -> Insert | None:
    """The insert of the choice, ``None`` if the rater already answered that trial; :class:`SurveyError` if it was
    shown less than ``min_view_ms`` ago."""
    trial = connection.execute(
        select(Trial.position, Trial.shown_at, Choice.id)
        .outerjoin(Choice, (Choice.rater_id == Trial.rater_id) & (Choice.position == Trial.position))
        .where(Trial.rater_id == rater_id, Trial.public_id == trial_id)
    ).first()
    if trial is None or trial.shown_at is None:
        raise SurveyError("That pair is not one you were shown; please choose between the versions on your screen.")
    if trial.id is not None:
        return None
    response_ms = _response_ms(trial.shown_at, min_view_ms, "both versions")
    return insert(Choice).values(rater_id=rater_id, position=trial.position, choice=choice, response_ms=response_ms)


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
