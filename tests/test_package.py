"""The package's front door: what ``import sdei_state`` costs and what it exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sdei_state

ROOT = Path(__file__).resolve().parent.parent


def test_import_loads_neither_cffi_nor_construct() -> None:
    """The migration and simulated-vCPU names load on first use, so a plain import stays
    cheap: no cffi (the KVM bindings), no construct (the blob declaration)."""
    code = ("import sys, json, sdei_state; "
            "print(json.dumps(sorted(m for m in ('cffi', 'construct', 'sdei_state.kvm', "
            "'sdei_state.migration') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert json.loads(done.stdout) == []


def test_every_exported_name_resolves_and_is_listed() -> None:
    for name in sdei_state.__all__:
        assert getattr(sdei_state, name) is not None, name
    for name in ("SimVm", "save_vm", "restore_vm", "preflight", "Blob", "HOST_SDEI",
                 "HOST_LINUX_6_12", "PRESETS", "SdeiStateError", "RegError", "RestoreError",
                 "BlobError", "KvmError", "ScenarioError", "StateError"):
        assert name in sdei_state.__all__, name
    assert set(sdei_state.__all__) <= set(dir(sdei_state))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        sdei_state.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("sdei_state.no_such_name resolved")
