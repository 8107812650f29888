"""``python -m sacnn``: the ``sacnn`` command (:mod:`sacnn.cli`)."""

import sys

from sacnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
