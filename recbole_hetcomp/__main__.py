"""``python -m recbole_hetcomp``: the ``recbole-hetcomp`` command (see :mod:`recbole_hetcomp.cli`)."""

import sys

from recbole_hetcomp.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m recbole_hetcomp"))
