"""``python -m sdei_state``: the ``sdei-state`` command."""

import sys

from .cli import main

sys.exit(main())
