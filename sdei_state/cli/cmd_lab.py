"""``sdei-state lab``: the emulated arm64 KVM host (docs/lab.md). The lab parses its own
options (they may come before its subcommand); this module only hands them over."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .common import Parser


def run_lab(argv: Sequence[str]) -> int:
    """``sdei-state lab ARGS``: the lab's exit status (the guest command's for run/test; 2 a
    lab failure or usage mistake, 124 a timeout)."""
    from ..lab import main as lab_main

    return lab_main(list(argv), parser_class=Parser)


def _cmd_lab(a: argparse.Namespace) -> int:
    return run_lab(a.lab_args)


def add_parser(sub: Any) -> None:
    s = sub.add_parser("lab", help="the emulated arm64 KVM host (see sdei-state lab --help)",
                       add_help=False)
    s.add_argument("lab_args", nargs=argparse.REMAINDER,
                   help="the lab's subcommand and options (sdei-state lab --help)")
    s.set_defaults(func=_cmd_lab)
