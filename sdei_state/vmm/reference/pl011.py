"""A transmit-only Arm PrimeCell UART (PL011, Arm DDI 0183) for the guest console.

Enough for Linux's amba-pl011 driver: the AMBA bus reads the peripheral and PrimeCell ID
registers (0xFE0-0xFFC) to match the driver (part 0x011, designer 0x41 'A'), the console
writes UARTDR after polling UARTFR, and the tty path writes while the flag register does not
say "transmit FIFO full". So UARTFR always reads "transmit FIFO empty, receive FIFO empty,
not busy": every byte written leaves at once, nothing is ever received, no interrupt is ever
needed. The control registers keep what the driver writes and read it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

DR: Final = 0x000
FR: Final = 0x018
ICR: Final = 0x044
FR_TXFE: Final = 1 << 7
FR_RXFE: Final = 1 << 4
FR_IDLE: Final = FR_TXFE | FR_RXFE
ID_BASE: Final = 0xFE0
# UARTPeriphID0-3 then UARTPCellID0-3, one byte per 32-bit register: part number 0x011,
# designer 0x41 (Arm), revision 3 (r1p5, the 32-byte FIFO revision), then 0xB105F00D.
ID_BYTES: Final = (0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1)
STORED: Final = frozenset({0x004, 0x020, 0x024, 0x028, 0x02C, 0x030, 0x034, 0x038, 0x048})
"""RSR/ECR, ILPR, IBRD, FBRD, LCR_H, CR, IFLS, IMSC, DMACR: read back as written."""
SIZE: Final = 0x1000


class Pl011:
    """The UART's registers; ``sink`` receives each transmitted byte."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.regs: dict[int, int] = dict.fromkeys(STORED, 0)
        self.transmitted = 0

    def read(self, vcpu: int, offset: int, size: int) -> int:
        """The value a ``size``-byte load at ``offset`` returns."""
        if offset == FR:
            return FR_IDLE
        if ID_BASE <= offset < SIZE and offset % 4 == 0:
            return ID_BYTES[(offset - ID_BASE) // 4]
        return self.regs.get(offset, 0) & ((1 << (8 * size)) - 1)

    def write(self, vcpu: int, offset: int, size: int, value: int) -> None:
        """A ``size``-byte store of ``value`` at ``offset``."""
        if offset == DR:
            self.transmitted += 1
            self.sink(bytes((value & 0xFF,)))
        elif offset in STORED:
            self.regs[offset] = value & 0xFFFF
        # ICR (clears interrupts that never assert) and read-only registers: ignored.
