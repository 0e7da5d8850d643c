"""``python -m sdei_state.lab ...``: the lab without the rest of the CLI (used by .ci/lab)."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
