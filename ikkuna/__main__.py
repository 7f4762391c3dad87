"""``python -m ikkuna``: the same as the ``ikkuna`` command."""

import sys

from ikkuna.cli import main

sys.exit(main())
