"""``python -m minigan ...``: the same as the ``minigan`` command (:mod:`minigan.cli`)."""

import sys

from .cli import main

sys.exit(main())
