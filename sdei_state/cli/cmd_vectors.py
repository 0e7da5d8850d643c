"""``sdei-state vectors verify|generate``: the migration round-trip vectors (docs/scenarios.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _directory(a: argparse.Namespace) -> Path | None:
    """``--dir``; else the source tree's ``vectors/`` (None: the vectors module finds it), or
    ``./vectors`` when the package is installed outside a source tree."""
    from ..scenario.vectors import default_dir

    if a.dir is not None:
        return Path(a.dir)
    cwd = Path.cwd() / "vectors"
    return cwd if not default_dir().is_dir() and cwd.is_dir() else None


def cmd_vectors_verify(a: argparse.Namespace) -> int:
    from ..scenario.vectors import main_verify

    return main_verify(_directory(a))


def cmd_vectors_generate(a: argparse.Namespace) -> int:
    from ..scenario.vectors import main_generate

    return main_generate(_directory(a))


def add_parser(sub: Any) -> None:
    s = sub.add_parser("vectors", help="migration round-trip vectors: verify, generate",
                       description="The checked-in migration round-trip vectors.")
    vsub = s.add_subparsers(dest="vectors_command", metavar="ACTION", required=True)
    v = vsub.add_parser("verify", help="replay every vector and compare exactly",
                        epilog="exit status: 0 all pass, 1 one fails, 2 the directory is "
                               "unusable")
    v.add_argument("--dir", help="vectors directory (default: the repository's vectors/)")
    v.set_defaults(func=cmd_vectors_verify)
    v = vsub.add_parser("generate", help="rewrite the vectors from the conformance scenarios",
                        epilog="exit status: 0 written, 1 a scenario misses its expectations "
                               "(nothing written), 2 the directory is unusable")
    v.add_argument("--dir", help="vectors directory, created if absent (default: the "
                                 "repository's vectors/)")
    v.set_defaults(func=cmd_vectors_generate)
