"""The one kind of error a user can act on, and how every command and UI handler shows it.

A :class:`UserError` (a bad file, missing weights, a wrong flag value, a full share store …) is shown as one line:
``error: <message>`` and exit status 1 from every ``python -m …`` command (:func:`sr_app.cli.run_command`), a
``gr.Error`` toast in every UI handler (:func:`user_error`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr


class UserError(Exception):
    """A problem the user can fix; its message says what and how."""


def user_error(error: UserError | str) -> gr.Error:
    """``error`` as the toast a UI handler raises (``raise user_error(error) from error``); the server log is spared its
    traceback."""
    import gradio as gr  # here, so that the training and survey commands do not load the web stack

    return gr.Error(str(error), print_exception=False)
