"""What every ``sdei-state`` command shares: the usage error, bounded input, one JSON style.

A command never reads more than ``MAX_INPUT_BYTES`` from a file or stdin, never allocates
for more than ``MAX_VCPUS`` simulated vCPUs, and answers every bad input with a ``UserError``
(or another ``SdeiStateError``) that ``sdei_state.cli.main`` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any, Final, NoReturn

from ..errors import SdeiStateError

PROG: Final = "sdei-state"
EXIT_USAGE: Final = 2
"""A usage mistake or unusable input: one line on stderr, nothing done."""

MAX_INPUT_BYTES: Final = 16 << 20
"""Bytes a command reads from one file or stdin (16 MiB). A binary blob of 512 vCPUs (arm64
KVM's KVM_MAX_VCPUS) with SVE registers takes about 4.5 MiB, one of 4,096 vCPUs of 91 U64
registers 2.8 MiB; the library itself has no such limit."""
MAX_VCPUS: Final = 4096
"""vCPUs of a simulated destination (``blob preflight``): 8x arm64 KVM's KVM_MAX_VCPUS (512),
about 2 s and 30 MB of resident memory."""
MAX_STEPS: Final = 1_000_000
"""Steps of a generated scenario (``scenario generate``)."""
MAX_TEXT: Final = 200
"""Characters of a register id or name on the command line (the longest macro is ~40)."""

_INTEGER: Final = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9_]+)")


class UserError(SdeiStateError):
    """A command-line mistake; printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are a ``UserError`` (one line, exit status 2), not a usage
    text: ``sdei-state: blob show: the following arguments are required: file``."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix(PROG).strip()
        raise UserError(f"{where + ': ' if where else ''}{message} (see {self.prog} --help)")


def parse_int(text: str) -> int | None:
    """An integer written in ASCII (decimal, or 0x/0o/0b), or None: Unicode digits, blanks
    and more than ``MAX_TEXT`` characters are refused before ``int`` sees them."""
    if len(text) > MAX_TEXT or not _INTEGER.fullmatch(text):
        return None
    try:
        return int(text, 0)
    except ValueError:  # "010", misplaced underscores
        return None


def int_arg(lo: int, hi: int, note: str = "") -> Callable[[str], int]:
    """An argparse ``type`` for an integer option in ``lo .. hi``."""
    def parse(text: str) -> int:
        value = parse_int(text)
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r} is not an integer {lo}..{hi}{note}")
        return value
    return parse


def read_bytes(path: str) -> bytes:
    """A file's bytes (``-``: stdin), at most ``MAX_INPUT_BYTES``."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None
    except ValueError as e:  # an embedded NUL in the name, a closed stdin
        raise UserError(f"{path!r}: {e}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise UserError(f"{source_name(path)}: larger than {MAX_INPUT_BYTES >> 20} MiB, the "
                        "most a command reads")
    return data


def read_text(path: str) -> str:
    """A file's text (``-``: stdin), UTF-8, at most ``MAX_INPUT_BYTES``."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{source_name(path)}: not UTF-8 text (byte {data[e.start]:#04x} at "
                        f"offset {e.start})") from None


def source_name(path: str) -> str:
    return "stdin" if path == "-" else path


def dump(obj: Any) -> None:
    """Print one JSON document in the one style of every ``--json`` output (and of
    ``selftest --format json``): two-space indent, keys in the order the document defines,
    ASCII only (anything else as ``\\u`` escapes), a newline at the end."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def one_line(message: str, limit: int = 1000) -> str:
    """An error message as one line of at most ``limit`` characters (file names and values
    can hold newlines and be megabytes long)."""
    flat = message.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= limit else f"{flat[:limit - 3]}..."
