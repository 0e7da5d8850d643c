"""The selftest's guest programs: declared as data (``program.ProgramSpec``), built into
images by ``builder.build`` with the ``sdei_state.guest`` assembler, and named in
``catalog.PROGRAMS``.

They live with the selftest, not in ``guest``, because they speak SDEI (function ids,
completion statuses, events): ``guest`` is the CPU and knows nothing of the model.
"""

from __future__ import annotations

from .builder import build
from .catalog import PROGRAMS
from .program import CallSite, GuestProgram, HandlerInfo, ProgramError, ProgramSpec

__all__ = ["PROGRAMS", "CallSite", "GuestProgram", "HandlerInfo", "ProgramError",
           "ProgramSpec", "build"]
