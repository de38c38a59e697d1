"""``python -m pycnn``: see :mod:`pycnn.cli`."""

import sys

from .cli import main

sys.exit(main())
