"""`python -m train.edsr`: the same as ``python -m train.sr --arch edsr`` (EDSR's L1 recipe by default)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sr_app.cli import run_command
from train import sr


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m train.sr --arch edsr ARGV`` under this command's name (``argv`` ``None``: the process's)."""
    sr.main(["--arch", "edsr", *(sys.argv[1:] if argv is None else argv)], prog="python -m train.edsr")


if __name__ == "__main__":
    run_command(main)
