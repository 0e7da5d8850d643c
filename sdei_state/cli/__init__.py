"""The ``sdei-state`` command. Each subcommand is a thin shell over a library function, in its
own module (``cmd_selftest``, ``cmd_replay``, ``cmd_regs``, ``cmd_blob``, ``cmd_vectors``,
``cmd_lab``, ``cmd_vmm``); ``common`` holds what they share.

Every mistake (a bad option, an unreadable or malformed file, a value out of range) ends in
one line on stderr, ``sdei-state: <what was wrong>``, and exit status 2 (``EXIT_USAGE``);
never a traceback. A subcommand's other statuses are in its ``--help``. Every ``--json``
output is one document in one style (``common.dump``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import SdeiStateError
from . import cmd_blob, cmd_lab, cmd_regs, cmd_replay, cmd_selftest, cmd_vectors, cmd_vmm
from .common import EXIT_USAGE, PROG, Parser, UserError, one_line

__all__ = ["EXIT_USAGE", "UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="arm64 SDEI for KVM guests: reference model, firmware-register ABI, "
                    "KVM bindings, selftests.",
        epilog="exit status: 0 success, 2 a usage mistake or unusable input (one line on "
               "stderr); a subcommand's other statuses are in its --help")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd_selftest.add_parser(sub)
    cmd_replay.add_parser(sub)
    cmd_regs.add_parsers(sub)
    cmd_blob.add_parser(sub)
    cmd_vectors.add_parser(sub)
    cmd_lab.add_parser(sub)
    cmd_vmm.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sdei-state ARGV`` (default ``sys.argv[1:]``); the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["lab"]:  # the lab has its own parser (options before its subcommand)
            return cmd_lab.run_lab(args[1:])
        ns = build_parser().parse_args(args)
        func: Callable[[argparse.Namespace], int] = ns.func
        return func(ns)
    except SdeiStateError as e:
        print(f"{PROG}: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
