"""The survey's user-facing errors: :class:`SurveyError` for a request it cannot accept (:class:`StudyUnavailable` when
a study takes no new raters), :class:`StorageError` (and :func:`storage_errors`) for a database failure, each with a
message meant for the person who made the request."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy.exc import OperationalError

from sr_app.errors import UserError

STORAGE_ERROR = (
    "The survey could not save this just now: its database is busy or out of space. Everything you rated before "
    "is kept; please try again in a moment."
)
logger = logging.getLogger(__name__)


class SurveyError(UserError, ValueError):
    """A request the survey cannot accept; the message is meant for the person who made it."""


class StudyUnavailable(SurveyError):
    """The study takes no new raters: it is closed, or full (it has its ``max_raters``)."""


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
