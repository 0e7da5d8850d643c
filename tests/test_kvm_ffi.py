"""Loading the bindings: the two cffi modes, the env var that forces one, their errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdei_state.kvm import ffi
from sdei_state.kvm.ffi import FfiBackendError

ROOT = Path(__file__).resolve().parent.parent


def test_env_var_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, want in (("", None), ("auto", None), ("ABI", "abi"), (" api ", "api")):
        monkeypatch.setenv(ffi.ENV_VAR, value)
        assert ffi.requested_mode() == want
    monkeypatch.setenv(ffi.ENV_VAR, "fast")
    with pytest.raises(FfiBackendError, match=r"SDEI_STATE_CFFI='fast': expected"):
        ffi.requested_mode()
    with pytest.raises(FfiBackendError, match="cffi mode 'x'"):
        ffi.backend("x")  # type: ignore[arg-type]


def test_abi_mode_loads_without_a_compiler() -> None:
    b = ffi.backend("abi")
    assert b.mode == "abi" and b is ffi.backend("abi")
    assert b.ffi.sizeof("struct kvm_one_reg") == 16
    assert not hasattr(b.lib, "sdei_kvm_one_reg_batch")


def test_api_mode_has_the_c_helpers() -> None:
    why = ffi.api_unavailable_reason()
    if why:
        pytest.skip(f"cffi API mode: {why}")
    b = ffi.backend("api")
    assert b.mode == "api" and b.ffi.sizeof("struct kvm_one_reg") == 16
    # the helper turns a failure into -errno (EBADF = 9 on fd -1)
    assert b.ioctl(-1, 0xAE00, b.ffi.NULL) == -9
    regs = b.prepare_batch(b.ffi.new("struct kvm_one_reg[]", 2), 2)
    done = b.ffi.new("size_t *", 7)
    assert b.one_reg_batch(-1, 0x4010AEAB, regs, 2, done) == 9 and done[0] == 0
    assert b.one_reg_batch(-1, 0x4010AEAB, regs, 0, done) == 0 and done[0] == 0


def test_abi_mode_errors_match() -> None:
    b = ffi.backend("abi")
    assert b.ioctl(-1, 0xAE00, b.ffi.NULL) == -9
    regs = b.prepare_batch(b.ffi.new("struct kvm_one_reg[]", 2), 2)
    done = b.ffi.new("size_t *", 7)
    assert b.one_reg_batch(-1, 0x4010AEAB, regs, 2, done) == 9 and done[0] == 0


def test_no_compiler_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffi, "_installed_module", lambda: None)
    monkeypatch.setattr(ffi, "_cache", {})
    monkeypatch.setenv("CC", "/nonexistent/cc")
    why = ffi.api_unavailable_reason()
    assert why is not None and "no C compiler" in why
    with pytest.raises(FfiBackendError, match="API mode unavailable: no compiled module"):
        ffi.backend("api")


@pytest.mark.parametrize("forced", ["abi", "api"])
def test_env_var_forces_the_mode_in_a_fresh_process(forced: str) -> None:
    if forced == "api" and ffi.api_unavailable_reason():
        pytest.skip(f"cffi API mode: {ffi.api_unavailable_reason()}")
    env = dict(os.environ, SDEI_STATE_CFFI=forced, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c",
                          "from sdei_state.kvm import ffi; print(ffi.backend().mode)"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == forced


def test_mmap_helpers_round_trip() -> None:
    b = ffi.backend("abi")
    p = b.mmap_anonymous(4096)
    p[0:3] = b"abc"
    assert bytes(b.ffi.buffer(p, 3)) == b"abc"
    b.munmap(p, 4096)
    with pytest.raises(OSError):
        b.mmap_shared(-1, 4096)
