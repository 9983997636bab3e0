"""``python -m recobatch``: the command line (see :mod:`recobatch.cli`)."""

import sys

from recobatch.cli import main

sys.exit(main())
