"""``python -m sdei_state.cli``: the ``sdei-state`` command."""

import sys

from . import main

sys.exit(main())
