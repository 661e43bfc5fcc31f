"""``python -m tests.soak``: the soak from the command line (``make soak``: the full 30-minute run)."""

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
