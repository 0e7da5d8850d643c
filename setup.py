"""Install-time extras that pyproject.toml cannot express:

1. Copy the top-level ``cdefs/*.h`` into the package (``sdei_state/cdefs/``), where the
   installed ``sdei_state.kvm.ffi`` looks for them.
2. Build the compiled cffi module ``sdei_state.kvm._api`` (API mode) when cffi and a C
   compiler are available. The extension is optional: without a compiler the install still
   succeeds and the bindings run in ABI mode. ``SDEI_STATE_NO_EXT=1`` skips it on purpose.

The C source is generated into the build's own temporary directory (``build_ext.build_temp``)
when the extension is built, so a build writes nothing into the source tree itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import Extension, setup  # type: ignore[import-untyped]
from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]
from setuptools.command.build_py import build_py  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent


def _builder_module() -> ModuleType:
    """``sdei_state/kvm/_build.py`` loaded by path: the package need not be importable here."""
    spec = importlib.util.spec_from_file_location(
        "sdei_state_kvm_build", ROOT / "sdei_state" / "kvm" / "_build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class BuildPyWithCdefs(build_py):  # type: ignore[misc]
    """build_py that also ships cdefs/*.h as sdei_state/cdefs/*.h."""

    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "sdei_state" / "cdefs"
        dest.mkdir(parents=True, exist_ok=True)
        for h in sorted((ROOT / "cdefs").glob("*.h")):
            shutil.copy2(h, dest / h.name)


class BuildExtWithCffiSource(build_ext):  # type: ignore[misc]
    """build_ext that first writes the cffi-generated C source into ``build_temp``."""

    def run(self) -> None:
        builder = _builder_module()
        for ext in self.extensions:
            if ext.name == builder.MODULE_NAME:
                c_file = Path(self.build_temp) / f"{ext.name.replace('.', '_')}.c"
                c_file.parent.mkdir(parents=True, exist_ok=True)
                builder.make_builder().emit_c_code(str(c_file))
                ext.sources = [str(c_file)]
        super().run()


def _cffi_extensions() -> list[Any]:
    if os.environ.get("SDEI_STATE_NO_EXT") == "1":
        return []
    try:
        import cffi  # noqa: F401
    except ImportError:
        print("sdei-state: cffi not importable at build time; no compiled module "
              "(the bindings will use cffi ABI mode)", file=sys.stderr)
        return []
    # The source is filled in by BuildExtWithCffiSource; optional: no compiler, no module.
    return [Extension(_builder_module().MODULE_NAME, sources=[], optional=True)]


setup(cmdclass={"build_py": BuildPyWithCdefs, "build_ext": BuildExtWithCffiSource},
      ext_modules=_cffi_extensions())
