"""Which vCPU registers the machine reads and writes for a call, a dispatch and a completion.

Where each register costs an ioctl (a VMM serving SDEI over ONE_REG), these tuples are the
whole register traffic of the model: a call reads only the arguments its function takes
(``spec.ARITY``) and writes x0 plus the zeros of x1-x3 that were not read as 0 (KVM's
``smccc_set_retval()`` leaves x1-x3 zero); a dispatch reads the interrupted context and
SCTLR_EL1 (VBAR_EL1 only for a relative entry point) and writes the handler's entry; a
completion writes the context back. ``tests/test_provider_ioctls.py`` counts them per function.
Each is a fixed tuple, so a register view maps it to ONE_REG ids once.
"""

from __future__ import annotations

from typing import Final

from .cpu import CALL_ARGS, CONTEXT_GPRS, CpuReg

ARG_REGS: Final = tuple(CALL_ARGS[1:1 + n] for n in range(6))
"""n -> (x1 .. xn): the registers holding a call's first n arguments."""
ARG_PAD: Final = tuple((0,) * (5 - n) for n in range(6))
"""n -> the zeros that make n arguments read into the five (x1..x5) a handler takes."""
REPLY: Final = tuple(
    ((CpuReg.X0, *(r for k, r in enumerate((CpuReg.X1, CpuReg.X2, CpuReg.X3)) if mask >> k & 1)),
     (0,) * mask.bit_count())
    for mask in range(8))
"""A call's reply by mask (bit k: x(k+1) needs its zero written): its registers (x0, then those
of x1..x3, in register order) and the zeros after x0's result."""
SCTLR: Final = (CpuReg.SCTLR_EL1,)
"""What COMPLETE_AND_RESUME reads: its entry PSTATE depends on SCTLR_EL1 as it is now."""
DISPATCH_READ: Final = (*CONTEXT_GPRS, CpuReg.PC, CpuReg.PSTATE, CpuReg.SCTLR_EL1)
"""What dispatch reads: the interrupted context, and SCTLR_EL1 for the entry PSTATE."""
DISPATCH_READ_RELATIVE: Final = (*DISPATCH_READ, CpuReg.VBAR_EL1)
"""... and VBAR_EL1 when the entry point is relative to it."""
DISPATCH_WRITE: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.PSTATE, CpuReg.PC)
"""What dispatch may write (each only if the read showed another value): the event number,
its argument, the interrupted PC and PSTATE in x0-x3, then the handler's PSTATE and PC."""
COMPLETE_WRITE: Final = (*CONTEXT_GPRS, CpuReg.PSTATE, CpuReg.PC)
"""COMPLETE puts the interrupted context back."""
RESUME_WRITE: Final = (*CONTEXT_GPRS, CpuReg.ELR_EL1, CpuReg.SPSR_EL1, CpuReg.PSTATE, CpuReg.PC)
"""COMPLETE_AND_RESUME: the context's x0-x17, then an exception taken to EL1 at the resume
address (ELR_EL1 and SPSR_EL1 hold the interrupted PC and PSTATE)."""
