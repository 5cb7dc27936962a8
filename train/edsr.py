"""`python -m train.edsr`: the same as ``python -m train.sr --arch edsr`` (EDSR's L1 recipe by default)."""

import sys

from train.sr import main

if __name__ == "__main__":
    main(["--arch", "edsr", *sys.argv[1:]], prog="python -m train.edsr")
