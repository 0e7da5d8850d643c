"""The upstream KVM firmware pseudo-registers: ids, declarations, values, host presets.

Facts (``arch/arm64/include/uapi/asm/kvm.h``, ``Documentation/virt/kvm/arm/
fw-pseudo-registers.rst``, ``arch/arm64/kvm/hypercalls.c``):

- ``KVM_REG_ARM_FW_REG(0..3)``: PSCI_VERSION, SMCCC_ARCH_WORKAROUND_1/2/3;
  ``KVM_REG_ARM_FW_FEAT_BMAP_REG(0..3)``: STD_BMAP, STD_HYP_BMAP, VENDOR_HYP_BMAP,
  VENDOR_HYP_BMAP_2 (6.15+). ``kvm_arm_fw_reg_ids[]`` lists them in that order.
- ``kvm_arm_set_fw_reg()`` refuses any size but U64 with ENOENT before looking at the id, and
  any id it does not know with ENOENT.
- PSCI_VERSION is VM-wide and stored; it has no run-once lock (measured in the lab on 6.1 and
  6.12: it can still be changed after KVM_RUN).
- The WORKAROUND registers are checks, not state: SET stores nothing and fails with EINVAL if
  the host's level is lower than the value's; GET returns the host level. "Higher values mean
  better protection", so "at least as safe" is a numeric comparison (after WA2's narrowing).
- The bitmaps are VM-wide and stored; a bit the host does not know is EINVAL; a *change* after
  any vCPU has run is EBUSY ("KVM will not allow the userspace to configure the registers
  anymore once any of the vCPUs has run at least once"), writing the current value is fine.
  They reset to every bit the host knows (``GENMASK(<NAME>_BIT_COUNT - 1, 0)``), except
  VENDOR_HYP_BMAP_2, which "is reset to 0".

``STD_BIT_SDEI`` (bit 1 of STD_BMAP) is this project's gate (DESIGN section 4, after the
unmerged SDEI series); upstream defines only bit 0 there.

Everything here is a pure function of its arguments: a ``HostFirmware`` describes what one
kernel on one CPU offers, and ``check_set`` answers what that kernel's SET would return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Final

from . import ids

# --- ids -------------------------------------------------------------------------------------

PSCI_VERSION: Final = ids.fw_reg(0)
"""``KVM_REG_ARM_PSCI_VERSION`` = 0x6030000000140000."""
SMCCC_ARCH_WORKAROUND_1: Final = ids.fw_reg(1)
"""Spectre-v2 (CVE-2017-5715) mitigation level, 0x6030000000140001."""
SMCCC_ARCH_WORKAROUND_2: Final = ids.fw_reg(2)
"""Spectre-v4 / SSB (CVE-2018-3639) mitigation level, 0x6030000000140002."""
SMCCC_ARCH_WORKAROUND_3: Final = ids.fw_reg(3)
"""Spectre-BHB mitigation level, 0x6030000000140003 (not in fw-pseudo-registers.rst)."""
STD_BMAP: Final = ids.fw_feat_bmap_reg(0)
"""Standard Secure Service Calls (0x6030000000160000)."""
STD_HYP_BMAP: Final = ids.fw_feat_bmap_reg(1)
"""Standard Hypervisor Service Calls (0x6030000000160001)."""
VENDOR_HYP_BMAP: Final = ids.fw_feat_bmap_reg(2)
"""Vendor Hypervisor Service Calls, function numbers 0-63 (0x6030000000160002)."""
VENDOR_HYP_BMAP_2: Final = ids.fw_feat_bmap_reg(3)
"""Vendor Hypervisor Service Calls, function numbers 64-127 (0x6030000000160003, 6.15+)."""

WORKAROUNDS: Final = (SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3)
BITMAPS: Final = (STD_BMAP, STD_HYP_BMAP, VENDOR_HYP_BMAP, VENDOR_HYP_BMAP_2)

FEATURE_LEVEL_MASK: Final = 0xF
"""``KVM_REG_FEATURE_LEVEL_MASK`` = GENMASK(3, 0): the level field of a WORKAROUND value."""
WA2_ENABLED: Final = 1 << 4
"""``KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED``: only valid with level AVAIL."""

# Bit numbers, as the uapi enums give them.
STD_BIT_TRNG_V1_0: Final = 0
STD_BIT_SDEI: Final = 1
"""Proposed (DESIGN section 4, as the unmerged SDEI series had it); not upstream."""
STD_HYP_BIT_PV_TIME: Final = 0
VENDOR_HYP_BIT_FUNC_FEAT: Final = 0
VENDOR_HYP_BIT_PTP: Final = 1
VENDOR_HYP_BIT_DISCOVER_IMPL_VER: Final = 0
"""Bit 0 of VENDOR_HYP_BMAP_2."""
VENDOR_HYP_BIT_DISCOVER_IMPL_CPUS: Final = 1
"""Bit 1 of VENDOR_HYP_BMAP_2."""


class PsciVersion(IntEnum):
    """``KVM_ARM_PSCI_*`` = PSCI_VERSION(major, minor): major in bits 30:16, minor in 15:0."""

    V0_1 = 0x0000_0001
    V0_2 = 0x0000_0002
    V1_0 = 0x0001_0000
    V1_1 = 0x0001_0001
    V1_2 = 0x0001_0002
    V1_3 = 0x0001_0003

    @property
    def label(self) -> str:
        """``PSCI 1.1``."""
        return f"PSCI {self.value >> 16}.{self.value & 0xFFFF}"


class WaLevel(IntEnum):
    """Levels of SMCCC_ARCH_WORKAROUND_1 and _3 (host: VULNERABLE 0, MITIGATED 1, UNAFFECTED 2)."""

    NOT_AVAIL = 0
    AVAIL = 1
    NOT_REQUIRED = 2


class Wa2Level(IntEnum):
    """Levels of SMCCC_ARCH_WORKAROUND_2. A host presents only NOT_AVAIL or NOT_REQUIRED; it
    still accepts all four on SET ("they are ABI") but narrows UNKNOWN to NOT_AVAIL and AVAIL
    to NOT_REQUIRED before comparing."""

    NOT_AVAIL = 0
    UNKNOWN = 1
    AVAIL = 2
    NOT_REQUIRED = 3


class FwKind(Enum):
    """How KVM treats a firmware register on SET."""

    PSCI_VERSION = "psci_version"
    """A value from a fixed set, gated by the vCPU's PSCI_0_2 feature; stored VM-wide."""
    WORKAROUND = "workaround"
    """A level compared with the host's; never stored."""
    BITMAP = "bitmap"
    """A feature bitmap; stored VM-wide; locked (EBUSY on change) once the VM has run."""


# --- declarations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirmwareReg:
    """One upstream firmware register, declared once: what it is and how its values read."""

    id: int
    kind: FwKind
    values: tuple[tuple[int, str], ...] = ()
    """Named values (PSCI versions, WORKAROUND levels)."""
    bits: tuple[tuple[int, str], ...] = ()
    """Bitmaps: (bit number, name) of every bit this library knows, proposed ones included."""
    upstream_mask: int = 0
    """Bitmaps: the bits upstream KVM defines (the newest uapi header)."""
    reset_known: bool = True
    """Bitmaps: True if KVM resets it to every bit the host knows, False if to 0."""

    @property
    def name(self) -> str:
        """Short name: ``PSCI_VERSION``, ``STD_BMAP`` ..."""
        return ids.short_name(self.id)

    @property
    def macro(self) -> str:
        """The uapi macro: ``KVM_REG_ARM_PSCI_VERSION``, ``KVM_REG_ARM_STD_BMAP`` ..."""
        return "KVM_REG_ARM_" + self.name

    @property
    def stored(self) -> bool:
        """False for the WORKAROUND registers: SET only checks, GET reports the host."""
        return self.kind is not FwKind.WORKAROUND

    @property
    def bit_mask(self) -> int:
        """Bitmaps: every bit of ``bits``."""
        mask = 0
        for bit, _ in self.bits:
            mask |= 1 << bit
        return mask

    def bit(self, name: str) -> int:
        """The mask of the bit called ``name`` (``STD_BMAP``'s ``SDEI`` -> 0x2)."""
        for bit, bit_name in self.bits:
            if bit_name == name:
                return 1 << bit
        raise ValueError(f"{self.name} has no bit {name!r} "
                         f"(known: {', '.join(n for _, n in self.bits) or 'none'})")


_WA_LEVELS: Final = tuple((int(lv), lv.name) for lv in WaLevel)

FIRMWARE_REGS: Final[tuple[FirmwareReg, ...]] = (
    FirmwareReg(PSCI_VERSION, FwKind.PSCI_VERSION,
                values=tuple((int(v), v.label) for v in PsciVersion)),
    FirmwareReg(SMCCC_ARCH_WORKAROUND_1, FwKind.WORKAROUND, values=_WA_LEVELS),
    FirmwareReg(SMCCC_ARCH_WORKAROUND_2, FwKind.WORKAROUND,
                values=tuple((int(lv), lv.name) for lv in Wa2Level)),
    FirmwareReg(SMCCC_ARCH_WORKAROUND_3, FwKind.WORKAROUND, values=_WA_LEVELS),
    FirmwareReg(STD_BMAP, FwKind.BITMAP,
                bits=((STD_BIT_TRNG_V1_0, "TRNG_V1_0"), (STD_BIT_SDEI, "SDEI")),
                upstream_mask=1 << STD_BIT_TRNG_V1_0),
    FirmwareReg(STD_HYP_BMAP, FwKind.BITMAP, bits=((STD_HYP_BIT_PV_TIME, "PV_TIME"),),
                upstream_mask=1 << STD_HYP_BIT_PV_TIME),
    FirmwareReg(VENDOR_HYP_BMAP, FwKind.BITMAP,
                bits=((VENDOR_HYP_BIT_FUNC_FEAT, "FUNC_FEAT"), (VENDOR_HYP_BIT_PTP, "PTP")),
                upstream_mask=0x3),
    FirmwareReg(VENDOR_HYP_BMAP_2, FwKind.BITMAP,
                bits=((VENDOR_HYP_BIT_DISCOVER_IMPL_VER, "DISCOVER_IMPL_VER"),
                      (VENDOR_HYP_BIT_DISCOVER_IMPL_CPUS, "DISCOVER_IMPL_CPUS")),
                upstream_mask=0x3, reset_known=False),
)
"""Every upstream firmware register, in ``kvm_arm_fw_reg_ids[]`` order."""

FIRMWARE_BY_ID: Final[Mapping[int, FirmwareReg]] = MappingProxyType(
    {r.id: r for r in FIRMWARE_REGS}
)


def declaration(reg_id: int) -> FirmwareReg:
    """The declaration of an upstream firmware register; ValueError naming any other id."""
    decl = FIRMWARE_BY_ID.get(reg_id)
    if decl is None:
        raise ValueError(f"{ids.describe(reg_id)} is not an upstream firmware register "
                         "(PSCI_VERSION, SMCCC_ARCH_WORKAROUND_1/2/3, STD_BMAP, STD_HYP_BMAP, "
                         "VENDOR_HYP_BMAP, VENDOR_HYP_BMAP_2)")
    return decl


def is_firmware_reg(reg_id: int) -> bool:
    """True for the eight upstream firmware registers (not for the SDEI block)."""
    return reg_id in FIRMWARE_BY_ID


def is_stored(reg_id: int) -> bool:
    """Whether an accepted SET stores the value (PSCI_VERSION and the bitmaps) or only checks
    it (the WORKAROUND registers). ValueError for any other id."""
    return declaration(reg_id).stored


# --- values ----------------------------------------------------------------------------------


def check_u64(value: object, what: str | FirmwareReg | Callable[[], str]) -> int:
    """``value`` if it is a u64; else ValueError naming ``what`` (a register, or a function
    making the text, is only formatted then: this runs on every restored firmware value)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ids.U64_MAX:
        name = what if isinstance(what, str) else what.name if isinstance(
            what, FirmwareReg) else what()
        raise ValueError(f"{name} = {value!r} is not an unsigned 64-bit value")
    return value


def decode_value(reg_id: int, value: int) -> str:
    """A register value in words: ``PSCI 1.1``, ``NOT_REQUIRED``, ``AVAIL|ENABLED``,
    ``TRNG_V1_0|SDEI``, ``none``; undefined values say so (``0x7 (undefined level)``,
    ``TRNG_V1_0|bit63``). ValueError for a non-firmware id or a value outside u64."""
    decl = declaration(reg_id)
    value = check_u64(value, decl)
    if decl.kind is FwKind.PSCI_VERSION:
        try:
            return PsciVersion(value).label
        except ValueError:
            return f"{value:#x} (not a PSCI version KVM knows)"
    if decl.kind is FwKind.WORKAROUND:
        extra = WA2_ENABLED if reg_id == SMCCC_ARCH_WORKAROUND_2 else 0
        names = dict(decl.values)
        level = value & FEATURE_LEVEL_MASK
        if value & ~(FEATURE_LEVEL_MASK | extra) or level not in names:
            return f"{value:#x} (undefined level)"
        return names[level] + ("|ENABLED" if value & extra else "")
    names = dict(decl.bits)
    parts = [names.get(b, f"bit{b}") for b in range(64) if value >> b & 1]
    return "|".join(parts) if parts else "none"


# --- hosts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostFirmware:
    """What one host kernel (on one CPU) offers: the GET values that are host properties and
    the SET rules that depend on the host. Registers the host lacks are absent from
    ``wa_levels``/``bitmaps`` (an old kernel without WORKAROUND_3 or VENDOR_HYP_BMAP_2)."""

    name: str
    psci_max: PsciVersion
    """``KVM_ARM_PSCI_LATEST`` of that kernel: the default PSCI_VERSION of a PSCI_0_2 vCPU and
    the newest version its SET accepts."""
    wa_levels: tuple[tuple[int, int], ...]
    """(WORKAROUND id, host level as GET returns it)."""
    bitmaps: tuple[tuple[int, int], ...]
    """(bitmap id, mask of the bits this host knows)."""

    def __post_init__(self) -> None:
        if not isinstance(self.psci_max, PsciVersion) or self.psci_max < PsciVersion.V0_2:
            raise ValueError(f"host {self.name}: psci_max must be a PsciVersion >= 0.2, "
                             f"got {self.psci_max!r}")
        seen: set[int] = set()
        for reg_id, level in self.wa_levels:
            if reg_id not in WORKAROUNDS or reg_id in seen:
                raise ValueError(f"host {self.name}: {ids.describe(reg_id)} is not a distinct "
                                 "WORKAROUND register")
            seen.add(reg_id)
            if level not in dict(declaration(reg_id).values):
                raise ValueError(f"host {self.name}: {ids.short_name(reg_id)} level {level!r} "
                                 "is not a defined level")
        for reg_id, known in self.bitmaps:
            if reg_id not in BITMAPS or reg_id in seen:
                raise ValueError(f"host {self.name}: {ids.describe(reg_id)} is not a distinct "
                                 "feature bitmap")
            seen.add(reg_id)
            check_u64(known, lambda: f"host {self.name}: known bits of "
                                     f"{ids.short_name(reg_id)}")  # noqa: B023 (used at once)

    def __repr__(self) -> str:
        wa = ", ".join(f"{ids.short_name(r)}={lv}" for r, lv in self.wa_levels)
        bm = ", ".join(f"{ids.short_name(r)}={known:#x}" for r, known in self.bitmaps)
        return (f"HostFirmware({self.name!r}, psci_max={self.psci_max.label}, "
                f"wa_levels=[{wa}], known_bits=[{bm}])")

    @property
    def reg_ids(self) -> tuple[int, ...]:
        """The firmware ids this host lists, in ``kvm_arm_fw_reg_ids[]`` order."""
        return tuple(r.id for r in FIRMWARE_REGS if self.has(r.id))

    def has(self, reg_id: int) -> bool:
        """True if this host's KVM_GET_REG_LIST lists ``reg_id`` (PSCI_VERSION always)."""
        return reg_id == PSCI_VERSION or any(
            r == reg_id for r, _ in self.wa_levels + self.bitmaps
        )

    def wa_level(self, reg_id: int) -> int:
        """The host level of a WORKAROUND register (what GET returns)."""
        for r, level in self.wa_levels:
            if r == reg_id:
                return level
        raise ValueError(f"host {self.name} has no {ids.describe(reg_id)}")

    def known_bits(self, reg_id: int) -> int | None:
        """The bits of a bitmap this host knows; None if the host lacks the bitmap."""
        for r, known in self.bitmaps:
            if r == reg_id:
                return known
        return None

    def psci_versions(self, psci_0_2: bool = True) -> tuple[PsciVersion, ...]:
        """The PSCI_VERSION values SET accepts: 0.1 alone without the PSCI_0_2 vCPU feature,
        else 0.2 up to ``psci_max``."""
        if not psci_0_2:
            return (PsciVersion.V0_1,)
        return tuple(v for v in PsciVersion if PsciVersion.V0_2 <= v <= self.psci_max)

    def reset_value(self, reg_id: int, *, psci_0_2: bool = True) -> int:
        """What a fresh VM on this host reads: PSCI ``psci_max`` (0.1 for a vCPU without
        PSCI_0_2), a WORKAROUND's host level, a bitmap's known bits (0 for VENDOR_HYP_BMAP_2).
        ValueError if the host lacks the register."""
        decl = declaration(reg_id)
        if not self.has(reg_id):
            raise ValueError(f"host {self.name} has no {ids.describe(reg_id)}")
        if decl.kind is FwKind.PSCI_VERSION:
            return int(self.psci_max) if psci_0_2 else int(PsciVersion.V0_1)
        if decl.kind is FwKind.WORKAROUND:
            return self.wa_level(reg_id)
        known = self.known_bits(reg_id)
        return (known or 0) if decl.reset_known else 0


_WA_6_12_MAX: Final = ((SMCCC_ARCH_WORKAROUND_1, 2), (SMCCC_ARCH_WORKAROUND_2, 0),
                       (SMCCC_ARCH_WORKAROUND_3, 0))
_BMAPS_6_12: Final = ((STD_BMAP, 0x1), (STD_HYP_BMAP, 0x1), (VENDOR_HYP_BMAP, 0x3))

HOST_LINUX_6_12: Final = HostFirmware(
    "linux-6.12 -cpu max VHE", PsciVersion.V1_1, _WA_6_12_MAX, _BMAPS_6_12)
"""Measured in the lab (6.12.117+deb12-arm64 under QEMU ``-cpu max``, VHE): PSCI 0x10001,
WA1 2, WA2 0, WA3 0, STD 0x1, STD_HYP 0x1, VENDOR_HYP 0x3; no VENDOR_HYP_BMAP_2 (6.15+)."""

HOST_LINUX_6_1: Final = HostFirmware(
    "linux-6.1 -cpu max VHE", PsciVersion.V1_1, _WA_6_12_MAX, _BMAPS_6_12)
"""Measured in the lab (6.1.0-56-arm64, ``-cpu max``): the same firmware registers, values
and SET errnos as 6.12."""

HOST_SDEI: Final = HostFirmware(
    "linux-6.12 -cpu max VHE + SDEI", PsciVersion.V1_1, _WA_6_12_MAX,
    ((STD_BMAP, (1 << STD_BIT_TRNG_V1_0) | (1 << STD_BIT_SDEI)), (STD_HYP_BMAP, 0x1),
     (VENDOR_HYP_BMAP, 0x3)))
"""The 6.12 host with the SDEI ABI of DESIGN section 4: STD bit 1 known, so set by default."""

HOST_LINUX_6_18_NEOVERSE: Final = HostFirmware(
    "linux-6.18 Neoverse", PsciVersion.V1_3,
    ((SMCCC_ARCH_WORKAROUND_1, 2), (SMCCC_ARCH_WORKAROUND_2, 0), (SMCCC_ARCH_WORKAROUND_3, 1)),
    (*_BMAPS_6_12, (VENDOR_HYP_BMAP_2, 0x3)))
"""Firecracker's Neoverse N1/V1/V2 fingerprints on a 6.18 host: PSCI 0x10003, WA1 2, WA2 0,
WA3 1 (AVAIL), STD 1, STD_HYP 1, VENDOR_HYP 3, VENDOR_HYP_BMAP_2 present (reads 0; its two
DISCOVER_IMPL bits known)."""

PRESETS: Final[Mapping[str, HostFirmware]] = MappingProxyType(
    {"6.12": HOST_LINUX_6_12, "6.1": HOST_LINUX_6_1, "sdei": HOST_SDEI,
     "6.18-neoverse": HOST_LINUX_6_18_NEOVERSE}
)
