"""Cross-checks against GNU binutils for AArch64, when installed (Debian:
``binutils-aarch64-linux-gnu``): assemble GNU-syntax lines to words, disassemble words.

Only tests and developers use this; nothing else in the library runs external programs.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

PREFIXES: Final = ("aarch64-linux-gnu-", "aarch64-none-elf-", "aarch64-elf-", "")


class BinutilsError(RuntimeError):
    """An AArch64 binutils tool is missing or failed; the message says which and why."""


def find_tool(name: str) -> str | None:
    """Path of an AArch64 ``as``/``objcopy``/``objdump`` (``$SDEI_BINUTILS_PREFIX`` first)."""
    env = os.environ.get("SDEI_BINUTILS_PREFIX")
    for p in (env, *PREFIXES) if env else PREFIXES:
        path = shutil.which(p + name)
        if path is not None and (p or _native_is_aarch64()):
            return path
    return None


def _native_is_aarch64() -> bool:
    """Unprefixed binutils are usable only on an AArch64 host."""
    return os.uname().machine in ("aarch64", "arm64")


def missing() -> str | None:
    """Why the cross-checks cannot run here, or None if they can."""
    for tool in ("as", "objcopy", "objdump"):
        if find_tool(tool) is None:
            return (f"no AArch64 GNU {tool} found (install binutils-aarch64-linux-gnu or set "
                    "SDEI_BINUTILS_PREFIX)")
    return None


def _tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise BinutilsError(missing() or f"no AArch64 {name}")
    return path


def assemble(lines: Sequence[str]) -> list[int]:
    """Assemble GNU-syntax lines (one instruction each) with ``as``; their words, in order."""
    with tempfile.TemporaryDirectory(prefix="sdei-guest-") as d:
        src, obj, binf = Path(d, "t.s"), Path(d, "t.o"), Path(d, "t.bin")
        src.write_text("".join(line + "\n" for line in lines))
        _run([_tool("as"), "-o", str(obj), str(src)])
        _run([_tool("objcopy"), "-O", "binary", "-j", ".text", str(obj), str(binf)])
        data = binf.read_bytes()
    if len(data) != 4 * len(lines):
        raise BinutilsError(f"as produced {len(data)} bytes for {len(lines)} instructions")
    return list(struct.unpack(f"<{len(lines)}I", data))


def disassemble(words: Sequence[int], vma: int = 0) -> list[str]:
    """``objdump -d`` of raw words at ``vma``: one ``"mnemonic operands"`` string per word,
    whitespace normalised and the ``//`` comment dropped."""
    with tempfile.TemporaryDirectory(prefix="sdei-guest-") as d:
        binf = Path(d, "w.bin")
        binf.write_bytes(struct.pack(f"<{len(words)}I", *words))
        out = _run([_tool("objdump"), "-D", "-b", "binary", "-m", "aarch64",
                    f"--adjust-vma={vma:#x}", str(binf)])
    texts: list[str] = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].strip().endswith(":"):
            text = " ".join(parts[2:]).split("//")[0].split(";")[0]
            texts.append(" ".join(text.replace(", ", ",").split()).replace(",", ", "))
    if len(texts) != len(words):
        raise BinutilsError(f"objdump listed {len(texts)} instructions for {len(words)} words")
    return texts


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode:
        raise BinutilsError(f"{Path(cmd[0]).name} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout
