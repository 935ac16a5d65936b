"""``python -m rtpitch``: the same as the ``rtpitch`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
