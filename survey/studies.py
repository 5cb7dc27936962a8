"""The study catalogue: finding, listing, summarising, opening and closing studies, resetting a rater, and their
rater links. Creating a study is :mod:`survey.creation`.

A study's images are ground truth, shown in versions, one per condition, to anonymous raters under one of two
protocols (:data:`~survey.db.PROTOCOLS`): absolute category rating (ACR) or pair comparison (PC, 2AFC). Raters take
part through :mod:`survey.raters`; errors for the admin are :class:`~survey.errors.SurveyError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from survey.crowd import NO_CROWD_CHECKS, CrowdChecks
from survey.db import (
    ACR,
    CLOSED,
    FLIP,
    GOLD,
    OPEN,
    PC,
    STUDY_IMAGE,
    TRAP,
    Assignment,
    Choice,
    Rater,
    Rating,
    SourceImage,
    Stimulus,
    Store,
    Study,
    Trial,
)
from survey.errors import SurveyError

#: Where the rater page lives in the app: ``/rate/<study public id>`` (served by :mod:`survey.ui.rate`).
RATE_PATH = "/rate"


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
    #: The cap on raters (None: no cap) and the least viewing time in milliseconds (:class:`~survey.db.Study`).
    max_raters: int | None = None
    min_view_ms: int = 0
    #: The crowd checks it runs (:class:`survey.crowd.CrowdChecks`).
    crowd: CrowdChecks = NO_CROWD_CHECKS


def rater_path(study_id: str) -> str:
    """The path of the rater page of the study whose public id is ``study_id``, from the app's address."""
    return f"{RATE_PATH}/{study_id}"


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
            answers = answers.where(SourceImage.study_id == study.id, SourceImage.role == STUDY_IMAGE)
        images = [image for image in study.images if image.role == STUDY_IMAGE]
        shown = {stimulus.condition_id for image in images for stimulus in image.stimuli}
        return StudySummary(
            name=study.name, public_id=study.public_id, status=study.status, created_at=study.created_at,
            images=len(images), conditions=tuple(c.name for c in study.conditions if c.id in shown),
            raters=raters or 0, finished_raters=finished or 0, ratings=session.scalar(answers) or 0,
            protocol=study.protocol, allow_tie=study.allow_tie, presentation=study.presentation,
            completion_code=study.completion_code, gold=any(image.role == GOLD for image in study.images),
            max_raters=study.max_raters, min_view_ms=study.min_view_ms, crowd=CrowdChecks(
                traps=sum(image.role == TRAP for image in study.images), training_items=study.training_items,
                training_pause_s=study.training_pause_s, qualification=study.qualification,
                withhold_code=study.withhold_code,
            ),
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


def reset_rater(store: Store, name: str, external_id: str) -> int:
    """Delete the unfinished session of the rater of study ``name`` whom a crowd platform calls ``external_id``, with
    the answers they gave, and return how many answers that was.

    The id is then free: the next browser arriving with it starts afresh, in a new random order, and the rater's place
    under the study's cap is free again. The old browser's token no longer works. A rater who has finished is not
    reset (:class:`SurveyError`; their answers are kept, and their id stays taken), nor is an id nobody started with.
    """
    external_id = external_id.strip()
    with store.session() as session, session.begin():
        study = get_study(session, name)
        query = select(Rater.id, Rater.finished_at).where(Rater.study_id == study.id, Rater.external_id == external_id)
        rater = session.execute(query).first()
        if rater is None:
            raise SurveyError(f"No rater of {name} has the id {external_id!r}.")
        if rater.finished_at is not None:
            raise SurveyError(f"Rater {external_id!r} has finished {name}; their answers are kept, and so is the id.")
        answers = [session.execute(delete(table).where(table.rater_id == rater.id)) for table in (Rating, Choice)]
        for table in (Assignment, Trial):  # after the answers that refer to them
            session.execute(delete(table).where(table.rater_id == rater.id))
        session.execute(delete(Rater).where(Rater.id == rater.id))
        return sum(result.rowcount for result in answers)
