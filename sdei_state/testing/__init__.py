"""A testing kit for code built on sdei-state: hypothesis strategies and pytest fixtures.

- ``sdei_state.testing.strategies``: register values (valid and invalid) per SDEI register,
  ``VcpuState`` values (any, canonical, and reached by driving the model with guest calls),
  call sequences, simulated VMs after such a sequence, and migration blobs;
- ``sdei_state.testing.steps``: the call-sequence steps and ``apply`` (runs them on a ``SimVm``);
- ``sdei_state.testing.fixtures``: pytest fixtures (a simulated VM, a real KVM vCPU where the
  host has one). Load them with ``pytest_plugins = ["sdei_state.testing.fixtures"]`` in your
  top-level ``conftest.py``.

It needs hypothesis and pytest, the ``testing`` extra: ``pip install 'sdei-state[testing]'``.
See docs/testing.md.
"""

from __future__ import annotations

import importlib


def _missing(*names: str) -> list[str]:
    out = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(name)
    return out


_MISSING = _missing("hypothesis", "pytest")
if _MISSING:
    raise ImportError(f"sdei_state.testing needs {' and '.join(_MISSING)}: "
                      "pip install 'sdei-state[testing]'")
