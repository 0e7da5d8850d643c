"""The host-side parts of the reference VMM (sdei_state.vmm.reference), without KVM: the
device tree read back with pylibfdt, the PL011 register model, the boot layout and Image
header, MMIO dispatch, the console, and the record of SDEI traffic replayed through the model.
"""

from __future__ import annotations

import gzip
import json
import struct
from typing import Any, Final

import pytest

from sdei_state.cpu import CpuReg, MemoryCpu
from sdei_state.events import ASYNC_PF
from sdei_state.kvm.exits import ExitReason, HypercallExit, MmioExit
from sdei_state.scenario.recorded import replay, to_scenario
from sdei_state.spec import Function
from sdei_state.vmm.reference import Console, Doorbell, MmioBus, Pl011, boot, layout, pl011
from sdei_state.vmm.reference import doorbell as db
from sdei_state.vmm.reference.record import (
    CallRecord,
    DispatchRecord,
    RecordingProvider,
    tally,
)

libfdt = pytest.importorskip("libfdt", reason="pylibfdt is not installed (pip install pylibfdt)")
from sdei_state.vmm.reference import fdt  # noqa: E402  (after the skip: it needs libfdt)

GIC_REG: Final = (0x0800_0000, 0x1_0000, 0x080A_0000, 0x4_0000)
MIB: Final = 1 << 20


def _tree(**kw: Any) -> Any:
    spec = fdt.MachineSpec(**{"mpidrs": (0, 1), "ram_size": 256 * MIB,
                              "bootargs": "console=ttyAMA0", "gic_reg": GIC_REG,
                              "initrd": (0x4400_0000, 0x4410_0000), **kw})
    return libfdt.Fdt(fdt.build(spec))


def _prop(t: Any, path: str, name: str) -> bytes:
    return bytes(t.getprop(t.path_offset(path), name))


def _strs(raw: bytes) -> list[str]:
    return raw.decode().rstrip("\0").split("\0")


def _u32s(raw: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(raw) // 4}I", raw)


def _u64s(raw: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(raw) // 8}Q", raw)


# -- device tree -------------------------------------------------------------------------------

def test_fdt_has_sdei_firmware_node_with_hvc() -> None:
    t = _tree()
    assert _strs(_prop(t, "/firmware/sdei", "compatible")) == ["arm,sdei-1.0"]
    assert _strs(_prop(t, "/firmware/sdei", "method")) == ["hvc"]


def test_fdt_psci_cpus_and_memory() -> None:
    t = _tree(mpidrs=(0x0, 0x1, 0x100))
    assert _strs(_prop(t, "/psci", "method")) == ["hvc"]
    assert "arm,psci-0.2" in _strs(_prop(t, "/psci", "compatible"))
    for mpidr in (0x0, 0x1, 0x100):
        node = f"/cpus/cpu@{mpidr:x}"
        assert _u64s(_prop(t, node, "reg")) == (mpidr,)
        assert _strs(_prop(t, node, "enable-method")) == ["psci"]
        assert _strs(_prop(t, node, "device_type")) == ["cpu"]
    assert _u64s(_prop(t, f"/memory@{layout.RAM_BASE:x}", "reg")) == (layout.RAM_BASE,
                                                                       256 * MIB)


def test_fdt_chosen_gic_timer_and_uart() -> None:
    t = _tree()
    assert _strs(_prop(t, "/chosen", "bootargs")) == ["console=ttyAMA0"]
    assert _u64s(_prop(t, "/chosen", "linux,initrd-start")) == (0x4400_0000,)
    assert _u64s(_prop(t, "/chosen", "linux,initrd-end")) == (0x4410_0000,)
    gic = f"/intc@{GIC_REG[0]:x}"
    assert _u64s(_prop(t, gic, "reg")) == GIC_REG
    assert _strs(_prop(t, gic, "compatible")) == ["arm,gic-v3"]
    assert _u32s(_prop(t, gic, "#interrupt-cells")) == (3,)
    assert _u32s(_prop(t, "/", "interrupt-parent")) == _u32s(_prop(t, gic, "phandle"))
    assert _u32s(_prop(t, "/timer", "interrupts")) == (1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4)
    uart = f"/pl011@{layout.UART_BASE:x}"
    assert _strs(_prop(t, uart, "compatible")) == ["arm,pl011", "arm,primecell"]
    assert _u64s(_prop(t, uart, "reg")) == (layout.UART_BASE, layout.UART_SIZE)
    clk = _u32s(_prop(t, "/apb-pclk", "phandle"))[0]
    assert _u32s(_prop(t, uart, "clocks")) == (clk, clk)
    assert _strs(_prop(t, uart, "clock-names")) == ["uartclk", "apb_pclk"]
    assert _strs(_prop(t, "/chosen", "stdout-path")) == [uart]


def test_fdt_without_initrd_names_none() -> None:
    t = _tree(initrd=None)
    with pytest.raises(libfdt.FdtException):
        t.getprop(t.path_offset("/chosen"), "linux,initrd-start")


# -- PL011 -------------------------------------------------------------------------------------

def test_pl011_identifies_as_a_primecell_pl011_and_transmits() -> None:
    out: list[bytes] = []
    u = Pl011(out.append)
    ids = [u.read(0, 0xFE0 + 4 * i, 4) for i in range(8)]
    periph = ids[0] | ids[1] << 8 | ids[2] << 16 | ids[3] << 24
    cell = ids[4] | ids[5] << 8 | ids[6] << 16 | ids[7] << 24
    assert periph & 0x000F_FFFF == 0x0004_1011  # what amba-pl011's id table matches
    assert cell == 0xB105_F00D  # the PrimeCell id the AMBA bus checks
    fr = u.read(0, pl011.FR, 4)
    assert fr & pl011.FR_TXFE and fr & pl011.FR_RXFE and not fr & (1 << 5) and not fr & (1 << 3)
    for ch in b"ok\n":
        u.write(1, pl011.DR, 4, 0x100 | ch)  # only the data byte leaves
    assert b"".join(out) == b"ok\n" and u.transmitted == 3


def test_pl011_keeps_control_registers() -> None:
    u = Pl011(lambda _b: None)
    u.write(0, 0x30, 4, 0x301)  # UARTCR
    u.write(0, 0x2C, 4, 0x70)  # UARTLCR_H
    u.write(0, 0x44, 4, 0x7FF)  # UARTICR: write-only
    assert (u.read(0, 0x30, 4), u.read(0, 0x2C, 4), u.read(0, 0x44, 4)) == (0x301, 0x70, 0)


# -- MMIO bus, console, doorbell ---------------------------------------------------------------

def _mmio(addr: int, value: int | None, size: int = 4) -> MmioExit:
    data = (value or 0).to_bytes(size, "little")
    return MmioExit(int(ExitReason.MMIO), addr, data, value is not None)


def test_bus_dispatches_by_window_and_counts_unclaimed() -> None:
    con = Console()
    bus = MmioBus()
    bus.add(layout.UART_BASE, layout.UART_SIZE, Pl011(con.write), "pl011")
    with pytest.raises(ValueError, match="overlaps pl011"):
        bus.add(layout.UART_BASE + 0x800, 0x1000, Pl011(con.write), "other")
    for ch in b"hi\nthere\n":
        assert bus.handle(0, _mmio(layout.UART_BASE, ch)) is None
    assert con.lines == ["hi", "there"]
    assert bus.handle(0, _mmio(layout.UART_BASE + pl011.FR, None)) == \
        pl011.FR_IDLE.to_bytes(4, "little")
    assert bus.handle(0, _mmio(0x1234_0000, None, 8)) == bytes(8)
    assert bus.unclaimed == [0x1234_0000]


def test_console_wait_for_finds_a_later_line() -> None:
    con = Console()
    con.write(b"a\nresult: 3 ok\npartial")
    m = con.wait_for(r"result: (\d+)", 0.1)
    assert m is not None and m.group(1) == "3"
    assert con.wait_for("partial", 0.1) is None  # not a complete line yet
    con.write(b"\n")
    assert con.wait_for("partial", 0.1) is not None


def test_doorbell_calls_back_on_the_ringing_vcpu() -> None:
    seen: list[tuple[str, int, int]] = []
    bell = Doorbell(lambda v, e: seen.append(("inject", v, e)),
                    lambda v, p: seen.append(("point", v, p)))
    assert bell.read(0, db.INJECT, 8) == db.MAGIC
    bell.write(2, db.INJECT, 8, ASYNC_PF.number)
    bell.write(1, db.CHECKPOINT, 8, 0x301)
    assert seen == [("inject", 2, ASYNC_PF.number), ("point", 1, 0x301)]


# -- boot protocol -----------------------------------------------------------------------------

def _image(text_offset: int = 0, image_size: int = 0x200_0000, flags: int = 0xA) -> bytes:
    hdr = boot.HEADER.pack(0x1400_0000, 0, text_offset, image_size, flags, 0, 0, 0,
                           boot.MAGIC, 0)
    return hdr + bytes(4096)


def test_image_header_and_layout() -> None:
    img = _image(image_size=0x2A1_0000)
    h = boot.parse_header(img)
    assert (h.text_offset, h.image_size) == (0, 0x2A1_0000)
    lay = boot.plan(img, 0x12_3456, 256 * MIB)
    assert lay.kernel == layout.RAM_BASE
    assert lay.dtb == layout.RAM_BASE + 0x2C0_0000  # the 2 MiB boundary after 42 MiB + 64 KiB
    assert lay.dtb % (2 * MIB) == 0 and lay.initrd == lay.dtb + 2 * MIB
    assert lay.initrd_end == lay.initrd + 0x12_3456 <= lay.ram_end
    assert boot.entry_registers(lay) == {CpuReg.PC: lay.kernel, CpuReg.X0: lay.dtb,
                                         CpuReg.X1: 0, CpuReg.X2: 0, CpuReg.X3: 0}


def test_image_load_writes_each_piece_where_planned() -> None:
    class Ram:
        guest_phys_addr = layout.RAM_BASE

        def __init__(self) -> None:
            self.writes: dict[int, bytes] = {}

        def write(self, offset: int, data: bytes) -> None:
            self.writes[offset] = data

    img = _image(text_offset=0x8_0000)
    ram = Ram()
    lay = boot.load(ram, 128 * MIB, img, b"\xd0\x0d\xfe\xed" + bytes(60), b"initrd")
    base = layout.RAM_BASE
    assert ram.writes == {lay.kernel - base: img, lay.dtb - base: b"\xd0\x0d\xfe\xed" + bytes(60),
                          lay.initrd - base: b"initrd"}
    assert lay.kernel == base + 0x8_0000


@pytest.mark.parametrize(("data", "msg"), [
    (b"MZ", "shorter than the 64-byte"),
    (bytes(64), "is not the arm64 Image magic"),
    (_image(flags=1), "big-endian"),
])
def test_bad_image_is_one_line_naming_the_field(data: bytes, msg: str) -> None:
    with pytest.raises(ValueError, match=msg) as ei:
        boot.parse_header(data)
    assert "\n" not in str(ei.value)


def test_gzip_image_is_decompressed_and_sizes_are_checked() -> None:
    img = _image()
    assert boot.read_image(gzip.compress(img)) == img
    with pytest.raises(ValueError, match="bad gzip"):
        boot.read_image(b"\x1f\x8b" + bytes(30))
    with pytest.raises(ValueError, match=r"need 25\d MiB of RAM"):
        boot.plan(_image(image_size=250 * MIB), 0, 64 * MIB)
    with pytest.raises(ValueError, match="vcpus 0"):
        layout.check_machine(0, 64 * MIB)
    with pytest.raises(ValueError, match="multiple of 2 MiB"):
        layout.check_machine(1, 65 * MIB)


# -- the record and its replay -----------------------------------------------------------------

class _FakeKernelVcpu:
    """Only what ``SdeiProvider.attach`` and the recorder touch."""

    immediate_exit = False

    def reg_list(self) -> tuple[int, ...]:
        return ()


def _provider(n: int) -> tuple[RecordingProvider, list[MemoryCpu]]:
    p = RecordingProvider(n, kick_signal=None)
    cpus = [MemoryCpu({CpuReg.PC: 0x1000, CpuReg.VBAR_EL1: 0x8000}) for _ in range(n)]
    for i, c in enumerate(cpus):
        p.attach(i, _FakeKernelVcpu(), c)  # type: ignore[arg-type]
    return p, cpus


def _call(p: RecordingProvider, cpus: list[MemoryCpu], i: int, fn: Function,
          *args: int) -> int:
    cpus[i].write({CpuReg(1 + k): a for k, a in enumerate((*args, 0, 0, 0, 0, 0)[:5])})
    assert p.handle_exit(i, HypercallExit(int(ExitReason.HYPERCALL), int(fn), (0,) * 6, 0))
    return cpus[i].read((CpuReg.X0,))[CpuReg.X0]


def _linux_like_session(p: RecordingProvider, cpus: list[MemoryCpu]) -> None:
    for i in range(2):
        assert _call(p, cpus, i, Function.EVENT_REGISTER, 0, 0x9000, 0x77 + i, 0, 0) == 0
        assert _call(p, cpus, i, Function.EVENT_ENABLE, 0) == 0
        assert _call(p, cpus, i, Function.PE_UNMASK) == 0
    assert _call(p, cpus, 0, Function.EVENT_SIGNAL, 0, 1) == 0  # to vCPU 1 (MPIDR 1)
    assert _call(p, cpus, 0, Function.EVENT_SIGNAL, 0, 0x7F) == (1 << 64) - 2  # no such MPIDR
    assert p.before_run(1) is not None
    assert p.before_run(1) is None  # nothing more pending
    assert _call(p, cpus, 1, Function.EVENT_CONTEXT, 2) == 0
    _call(p, cpus, 1, Function.EVENT_COMPLETE_AND_RESUME, 0x8480)


def test_record_replays_through_the_model_without_mismatch() -> None:
    p, cpus = _provider(2)
    _linux_like_session(p, cpus)
    kinds = [type(r).__name__ for r in p.records]
    assert kinds.count("DispatchRecord") == 1 and kinds.count("CallRecord") == 10
    compared, bad = replay(2, p.records)
    assert compared == 11 and bad == []
    t = tally(2, p.records, p.machine.vcpu_by_mpidr)
    assert t.signalled == (0, 1) and t.entered[1][0] == 1 and not t.entered[0]
    assert t.calls[Function.EVENT_SIGNAL] == 2


def test_a_record_the_model_disagrees_with_is_reported() -> None:
    p, cpus = _provider(2)
    _linux_like_session(p, cpus)
    recs = list(p.records)
    d = next(i for i, r in enumerate(recs) if isinstance(r, DispatchRecord))
    r = recs[d]
    assert isinstance(r, DispatchRecord)
    recs[d] = DispatchRecord(r.vcpu, r.event, r.context, r.vbar, r.sctlr,
                             (*r.entry[:4], r.entry[4] + 4, r.entry[5]))  # entered 4 late
    c = next(i for i, x in enumerate(recs) if isinstance(x, CallRecord)
             and x.function_id == Function.EVENT_CONTEXT)
    x = recs[c]
    assert isinstance(x, CallRecord)
    recs[c] = CallRecord(x.vcpu, x.function_id, x.args, (5, 0, 0, 0))
    _, bad = replay(2, recs)
    assert len(bad) == 2
    assert "'dispatch': True" in str(bad[0]) and "'pc'" in str(bad[0])
    doc, want = to_scenario(2, recs)
    assert doc["format"] == "sdei-state/scenario/1" and len(doc["steps"]) == len(want)


def test_record_json_round_trip_and_bad_entries() -> None:
    from sdei_state.vmm.reference.record import from_json, to_json

    p, cpus = _provider(2)
    _linux_like_session(p, cpus)
    p.note_migration()
    back = from_json(json.loads(json.dumps(to_json(p.records))))
    assert back == p.records
    with pytest.raises(ValueError, match="record entry 0: unknown kind"):
        from_json([{"kind": "Nope"}])
    with pytest.raises(ValueError, match="record entry 0: "):
        from_json([{"kind": "InjectRecord", "vcpu": 0}])
