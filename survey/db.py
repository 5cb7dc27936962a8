"""Survey storage: SQLAlchemy models, the rating scale and protocols, and where a study's files live (:class:`Store`).

Stimulus PNGs live next to the database in the data directory, ``$SR_LAB_DATA`` or ``~/.local/share/sr-lab`` by
default, never inside the package. Opening the database, and bringing one made by an earlier version up to date, is
:mod:`survey.store`.

Times are naive ``datetime`` values in UTC (SQLite keeps no time zone, so all dialects store the same thing).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

#: Absolute Category Rating scale (ITU-T P.910): score -> label. The one source of truth for the score range.
ACR_LABELS: dict[int, str] = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}
MIN_SCORE, MAX_SCORE = min(ACR_LABELS), max(ACR_LABELS)

#: Condition names besides the upscaling methods: the hidden reference (the original HR image) and the low
#: anchor (nearest-neighbour ×4 of the LR image).
REFERENCE = "reference"
NEAREST = "nearest"

#: Gold (trapping) items, ITU-T P.808 style: the score range an attentive rater gives each gold condition. A gold
#: item is a version of an image outside the study (nearest-neighbour ×4 or the original), mixed into every rater's
#: order, left out of the analysis; a rater who scores one outside its range is rejected.
GOLD_RANGES: dict[str, tuple[int, int]] = {NEAREST: (MIN_SCORE, 2), REFERENCE: (4, MAX_SCORE)}

#: What a source image is for. Its versions are the study's stimuli (:data:`STUDY_IMAGE`), or items mixed into every
#: rater's order and left out of the analysis: gold items (:data:`GOLD`), trapping items that show the rater which
#: answer to give (:data:`TRAP`: an instruction drawn on the photo for ACR, the expected score in
#: ``Stimulus.expected_score``; for PC a pair whose :data:`BROKEN` version is visibly damaged), and the training round
#: shown before the study (:data:`TRAINING`, ITU-T P.808's training section: answered, never analysed).
STUDY_IMAGE, GOLD, TRAP, TRAINING = "study", "gold", "trap", "training"
IMAGE_ROLES = (STUDY_IMAGE, GOLD, TRAP, TRAINING)
#: The condition of a PC trapping pair's damaged version (the other version is :data:`REFERENCE`).
BROKEN = "broken"

#: Longest external rater id (from a crowd platform's link) and completion code, in characters.
EXTERNAL_ID_MAX_CHARS = 128
COMPLETION_CODE_MAX_CHARS = 64

#: Study status values.
OPEN, CLOSED = "open", "closed"

#: Study protocols: absolute category rating (one image at a time, a score from 1 to 5) and pair comparison (2AFC:
#: two versions of one image, the rater picks the better one).
ACR, PC = "acr", "pc"
PROTOCOLS = (ACR, PC)
#: How a pair comparison shows its two versions: flipped in place at the same position, or side by side.
FLIP, SIDE_BY_SIDE = "flip", "side-by-side"
PRESENTATIONS = (FLIP, SIDE_BY_SIDE)
#: A pair comparison's answers: version A (on the left, or shown first) is better, version B is, or "no difference".
LEFT, RIGHT, TIE = "left", "right", "tie"
CHOICES = (LEFT, RIGHT, TIE)

STIMULI_DIR = "stimuli"


def new_token() -> str:
    """A random URL-safe token of 22 characters (128 bits): opaque ids and file names."""
    return secrets.token_urlsafe(16)


def utc_now() -> datetime:
    """The current time in UTC, as a naive datetime (the form every column here stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Study(Base):
    """One survey: a set of source images, each shown under several conditions, rated by anonymous raters."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Opaque id used in the rater link (``?study=...``); the name stays private to the admin.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_token)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    instructions: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), CheckConstraint(f"status IN ('{OPEN}', '{CLOSED}')"), default=OPEN)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    #: Tokens (file stems) of the two calibration PNGs: the original (top of the scale) and the
    #: nearest-neighbour version (bottom) of an image outside the study. Shown before rating, never rated.
    calibration_high: Mapped[str] = mapped_column(String(32))
    calibration_low: Mapped[str] = mapped_column(String(32))
    protocol: Mapped[str] = mapped_column(
        String(8), CheckConstraint(f"protocol IN ('{ACR}', '{PC}')"), default=ACR, server_default=ACR
    )
    #: Pair comparison only: whether raters may answer "no difference".
    allow_tie: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Pair comparison only: :data:`FLIP` or :data:`SIDE_BY_SIDE`.
    presentation: Mapped[str] = mapped_column(
        String(16), CheckConstraint(f"presentation IN ('{FLIP}', '{SIDE_BY_SIDE}')"), default=FLIP,
        server_default=FLIP,
    )  # fmt: skip
    #: Shown to a rater who has answered everything, to paste into a crowd platform (Prolific, MTurk); none if null.
    completion_code: Mapped[str | None] = mapped_column(String(COMPLETION_CODE_MAX_CHARS))
    #: At most this many raters may start (a reset rater frees their place); no cap if null.
    max_raters: Mapped[int | None] = mapped_column(Integer)
    #: Least time from sending a stimulus (or pair) to accepting an answer to it, in milliseconds (0: none, as in
    #: studies made before it existed). Sooner answers are refused and not stored.
    min_view_ms: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Crowd checks (``survey create --crowd``), all off in studies made before them. ``training_items``: how many
    #: training stimuli (ACR) or pairs (PC) every rater answers first; ``training_pause_s``: a rater who comes back
    #: after a pause longer than this (seconds) does the training round again (0: never); ``qualification``: a rater
    #: starts only if their browser window holds the largest stimulus at 1:1 in device pixels (P.808's environment
    #: check); ``withhold_code``: the completion code is shown only to a rater whose own answers pass the checks
    #: that need no other rater (:func:`survey.screening.own_answer_reasons`).
    training_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    training_pause_s: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    qualification: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    withhold_code: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    images: Mapped[list[SourceImage]] = relationship(back_populates="study", order_by="SourceImage.name")
    conditions: Mapped[list[Condition]] = relationship(back_populates="study", order_by="Condition.id")
    raters: Mapped[list[Rater]] = relationship(back_populates="study", order_by="Rater.id")


class SourceImage(Base):
    """A ground-truth image of a study, cropped to a multiple of the scale (``width``, ``height`` in pixels).

    Only images of ``role`` :data:`STUDY_IMAGE` are part of the study's analysis; the versions of the others are gold,
    trapping or training items (:data:`IMAGE_ROLES`)."""

    __tablename__ = "source_images"
    __table_args__ = (UniqueConstraint("study_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(
        String(8), CheckConstraint(f"role IN {IMAGE_ROLES}"), default=STUDY_IMAGE, server_default=STUDY_IMAGE
    )

    study: Mapped[Study] = relationship(back_populates="images")
    stimuli: Mapped[list[Stimulus]] = relationship(back_populates="image")


class Condition(Base):
    """What produced a stimulus: an upscaling method, :data:`REFERENCE` or :data:`NEAREST`."""

    __tablename__ = "conditions"
    __table_args__ = (UniqueConstraint("study_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))

    study: Mapped[Study] = relationship(back_populates="conditions")
    stimuli: Mapped[list[Stimulus]] = relationship(back_populates="condition")


class Stimulus(Base):
    """One image under one condition, stored as ``<data>/stimuli/<study public id>/<public_id>.png``."""

    __tablename__ = "stimuli"
    __table_args__ = (UniqueConstraint("image_id", "condition_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Opaque id: the PNG's file stem and what the rater API passes around.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_token)
    image_id: Mapped[int] = mapped_column(ForeignKey("source_images.id", ondelete="CASCADE"), index=True)
    condition_id: Mapped[int] = mapped_column(ForeignKey("conditions.id", ondelete="CASCADE"), index=True)

    #: ACR trapping items only: the score the instruction drawn on the photo asks for.
    expected_score: Mapped[int | None] = mapped_column(Integer)

    image: Mapped[SourceImage] = relationship(back_populates="stimuli")
    condition: Mapped[Condition] = relationship(back_populates="stimuli")


class Rater(Base):
    """A participant of one study, known by a random token kept in their browser and, when the rater link carries
    one, by the id a crowd platform gave them (``external_id``, unique within the study)."""

    __tablename__ = "raters"
    __table_args__ = (UniqueConstraint("study_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True, default=new_token)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: Optional free text the rater gave about themselves (screen, eyesight...), at most 500 characters.
    self_report: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_MAX_CHARS))

    study: Mapped[Study] = relationship(back_populates="raters")
    assignments: Mapped[list[Assignment]] = relationship(back_populates="rater", order_by="Assignment.position")
    trials: Mapped[list[Trial]] = relationship(back_populates="rater", order_by="Trial.position")


class Assignment(Base):
    """The rater's randomised playlist: stimulus number ``position`` (0-based) for this rater."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("rater_id", "stimulus_id"),)

    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"))
    #: When the stimulus was last sent to the rater; response times are measured from it.
    shown_at: Mapped[datetime | None] = mapped_column(DateTime)

    rater: Mapped[Rater] = relationship(back_populates="assignments")
    stimulus: Mapped[Stimulus] = relationship()


class ViewingColumns:
    """How the rater's browser showed the photo when they answered, as it reported it (null when it did not)."""

    #: The browser window's inner size, in CSS pixels.
    viewport_width: Mapped[int | None] = mapped_column(Integer)
    viewport_height: Mapped[int | None] = mapped_column(Integer)
    #: Device pixels per CSS pixel (``window.devicePixelRatio``).
    device_pixel_ratio: Mapped[float | None] = mapped_column(Float)
    #: CSS pixels per image pixel as the photo was shown (1: full size; more when the rater zoomed in).
    scale: Mapped[float | None] = mapped_column(Float)
    #: Milliseconds from the photo appearing on the screen to the answer, measured in the browser.
    display_ms: Mapped[int | None] = mapped_column(Integer)


class Rating(ViewingColumns, Base):
    """One score given by one rater to one of their assigned stimuli; at most one per (rater, stimulus)."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("rater_id", "stimulus_id"),
        ForeignKeyConstraint(
            ["rater_id", "stimulus_id"], ["assignments.rater_id", "assignments.stimulus_id"], ondelete="CASCADE"
        ),
        CheckConstraint(f"score BETWEEN {MIN_SCORE} AND {MAX_SCORE}", name="score_range"),
        CheckConstraint("response_ms >= 0", name="response_ms_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), index=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    #: Milliseconds from sending the stimulus to receiving the score (includes network and image loading).
    response_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)

    rater: Mapped[Rater] = relationship(viewonly=True)
    stimulus: Mapped[Stimulus] = relationship(viewonly=True)


class Trial(Base):
    """A pair comparison rater's randomised playlist: trial number ``position`` (0-based) shows stimulus ``left_id`` as
    version A and ``right_id`` as version B, two conditions of one image."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("rater_id", "left_id", "right_id"), CheckConstraint("left_id != right_id"))

    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Opaque id: what the rater API passes around.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_token)
    left_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"))
    right_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="CASCADE"))
    #: When the pair was last sent to the rater; response times are measured from it.
    shown_at: Mapped[datetime | None] = mapped_column(DateTime)

    rater: Mapped[Rater] = relationship(back_populates="trials")
    left: Mapped[Stimulus] = relationship(foreign_keys=[left_id])
    right: Mapped[Stimulus] = relationship(foreign_keys=[right_id])


class Choice(ViewingColumns, Base):
    """A rater's answer to one of their trials: :data:`LEFT`, :data:`RIGHT` or :data:`TIE`; exactly one per trial."""

    __tablename__ = "choices"
    __table_args__ = (
        UniqueConstraint("rater_id", "position"),
        ForeignKeyConstraint(["rater_id", "position"], ["trials.rater_id", "trials.position"], ondelete="CASCADE"),
        CheckConstraint(f"choice IN ('{LEFT}', '{RIGHT}', '{TIE}')", name="choice_value"),
        CheckConstraint("response_ms >= 0", name="choice_response_ms_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    choice: Mapped[str] = mapped_column(String(8))
    #: Milliseconds from sending the pair to receiving the choice (includes network, image loading and flipping).
    response_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_now)


@dataclass(frozen=True)
class Store:
    """Where a survey lives: the database engine and the data directory holding the stimulus PNGs."""

    engine: Engine
    data_dir: Path

    def session(self) -> Session:
        """A new ORM session; use it as a context manager (``with store.session() as s, s.begin(): ...``)."""
        return Session(self.engine, expire_on_commit=False)

    @property
    def stimuli_dir(self) -> Path:
        """The folder of every study's stimulus folder."""
        return self.data_dir / STIMULI_DIR

    def study_dir(self, study_public_id: str) -> Path:
        """The folder of one study's stimulus and calibration PNGs."""
        return self.stimuli_dir / study_public_id

    def png_path(self, study_public_id: str, token: str) -> Path:
        """The PNG file of a stimulus or calibration image, named by its opaque token."""
        return self.study_dir(study_public_id) / f"{token}.png"
