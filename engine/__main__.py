"""`python3 -m engine ...`: the dream image's entry point (see engine/cli.py)."""

import sys

from engine.cli import main

if __name__ == '__main__':
    sys.exit(main())
