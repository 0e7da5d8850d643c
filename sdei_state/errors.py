"""Exceptions. Every error a user can cause names what was wrong: register, field, value.

This module imports nothing of the package, so every layer can raise these errors. How a
register id is printed in a message belongs to the encoding layer: ``sdei_state.regs.ids``
installs its printer with ``set_register_namer`` when it is imported (before any code that can
raise ``RegError`` runs, since that code names its registers through ``regs.ids``).
"""

from __future__ import annotations

import errno as _errno
import os as _os
from collections.abc import Callable


def _unnamed(reg_id: int) -> str:
    return "register"


_namer: Callable[[int], str] = _unnamed


def set_register_namer(namer: Callable[[int], str]) -> None:
    """Install the function that prints a register id in ``RegError`` messages."""
    global _namer
    _namer = namer


class SdeiStateError(Exception):
    """Base of every error this library raises on purpose."""


class RegError(SdeiStateError, OSError):
    """A register access failed: carries the errno, the register id and its name.

    Raised identically by the simulated vCPU and the real KVM bindings, so save/restore code
    handles one exception type. ``str()`` reads like
    ``SET KVM_REG_ARM_FW_REG(0x110) /* SDEI_EVENT_STATE(0) */ (0x6030000000140110): EINVAL: ...``.
    """

    def __init__(self, err: int, reg_id: int, op: str, reason: str = "") -> None:
        self.reg_id = reg_id
        self.op = op
        self.reason = reason or _errno.errorcode.get(err, str(err))
        super().__init__(err, self._message(err))

    @property
    def reg_name(self) -> str:
        """The register as the kernel's get-reg-list prints it (``KVM_REG_ARM_FW_REG(0) ...``)."""
        return _namer(self.reg_id)

    @property
    def errname(self) -> str:
        return _errno.errorcode.get(self.errno or 0, str(self.errno))

    def _message(self, err: int) -> str:
        name = _errno.errorcode.get(err, str(err))
        try:
            desc = self.reg_name
        except Exception:  # naming must never hide the original failure
            desc = "register"
        return f"{self.op} {desc} ({self.reg_id:#018x}): {name}: {self.reason}"

    def __str__(self) -> str:
        return str(self.args[1])


class KvmError(SdeiStateError, OSError):
    """A KVM ioctl other than a register access failed; carries errno and the ioctl name."""

    def __init__(self, err: int, what: str) -> None:
        self.what = what
        super().__init__(err, f"{what}: {_errno.errorcode.get(err, str(err))} "
                              f"({_os.strerror(err)})")

    def __str__(self) -> str:
        return str(self.args[1])


class RegListTooSmall(KvmError):
    """KVM_GET_REG_LIST with ``n`` too small: E2BIG, and ``n`` is the count KVM writes back."""

    def __init__(self, needed: int, given: int) -> None:
        self.n = needed
        super().__init__(_errno.E2BIG, f"KVM_GET_REG_LIST: the vCPU has {needed} registers, "
                                       f"the list has room for {given}")


class ScenarioError(SdeiStateError):
    """Malformed scenario input; the message names the step."""


class BlobError(SdeiStateError):
    """A migration blob that cannot be used (truncated, corrupted, wrong version, inconsistent)."""


class RestoreError(SdeiStateError):
    """restore() refused or failed; names the register and the reason. Nothing or a known
    prefix was written (see ``written``)."""

    def __init__(self, message: str, reg_id: int | None = None, written: int = 0) -> None:
        self.reg_id = reg_id
        self.written = written
        super().__init__(message)
