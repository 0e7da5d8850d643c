"""The register encoding: arm64 ONE_REG ids and the firmware pseudo-registers.

``ids``: the one register-id vocabulary (compose, decode, name, print and parse every arm64
register id; ``id_layout``, ``id_codec`` and ``id_names`` do the work). ``firmware``: the
upstream firmware registers (PSCI_VERSION, SMCCC_ARCH_WORKAROUND_1/2/3, the feature bitmaps),
their values and the SET rules KVM applies. ``sdei``: the SDEI pseudo-register block, each
family and layout declared once (import it as ``sdei_state.regs.sdei``; it is not re-exported
here). The encoding imports the model only.
"""

from . import firmware, ids
from .firmware import *  # noqa: F403 - the names are listed once, in each module's __all__
from .ids import *  # noqa: F403

__all__ = [*firmware.__all__, *ids.__all__]
