"""The convention every ``python -m …`` command of the lab follows.

Exit status 0 on success; 1 on a user error (:class:`~sr_app.errors.UserError`, or a file system error such as a
missing or unwritable path) with a one-line ``error: <message>`` on stderr and no traceback; 2 on a usage error
(argparse's own). Anything else is a bug: it propagates with its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from sr_app.errors import UserError

#: Exit status of a command stopped by a user error (argparse uses 2 for usage errors).
USER_ERROR = 1


def run_command(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a command's ``main(argv)`` (``argv`` ``None``: the process's arguments) and exit by the convention above."""
    try:
        main(argv)
    except (UserError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR)
    sys.exit(0)


def add_data_dir_option(
    parser: argparse.ArgumentParser, subcommands: Sequence[argparse.ArgumentParser], help: str
) -> None:
    """``--data-dir`` on a command and on each of its ``subcommands``, so that it may stand before or after the
    subcommand's name (``args.data_dir``: ``None`` when not given)."""
    parser.add_argument("--data-dir", type=Path, help=help)
    for subcommand in subcommands:  # SUPPRESS: a subcommand without it keeps the value given before its name
        subcommand.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=help)
