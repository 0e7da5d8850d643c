"""Install-time extras that pyproject.toml cannot express:

1. Copy the top-level ``cdefs/*.h`` into the package (``sdei_state/cdefs/``), where the
   installed ``sdei_state.kvm.ffi`` looks for them.
2. Build the compiled cffi module ``_sdei_state_kvm`` (API mode) when cffi and a C compiler
   are available. The extension is optional: without a compiler the install still succeeds and
   the bindings run in ABI mode. ``SDEI_STATE_NO_EXT=1`` skips it on purpose.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from setuptools import setup  # type: ignore[import-untyped]
from setuptools.command.build_py import build_py  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent


class BuildPyWithCdefs(build_py):  # type: ignore[misc]
    """build_py that also ships cdefs/*.h as sdei_state/cdefs/*.h."""

    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "sdei_state" / "cdefs"
        dest.mkdir(parents=True, exist_ok=True)
        for h in sorted((ROOT / "cdefs").glob("*.h")):
            shutil.copy2(h, dest / h.name)


def _cffi_extensions() -> list[Any]:
    if os.environ.get("SDEI_STATE_NO_EXT") == "1":
        return []
    try:
        import cffi  # noqa: F401
    except ImportError:
        print("sdei-state: cffi not importable at build time; no compiled module "
              "(the bindings will use cffi ABI mode)", file=sys.stderr)
        return []
    # Load the builder by path: the package itself need not be importable here.
    spec = importlib.util.spec_from_file_location(
        "_sdei_state_kvm_build", ROOT / "sdei_state" / "kvm" / "_build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ext = mod.make_builder().distutils_extension(tmpdir=str(ROOT / "build" / "cffi"))
    ext.optional = True  # no compiler: warn and install without it
    return [ext]


setup(cmdclass={"build_py": BuildPyWithCdefs}, ext_modules=_cffi_extensions())
