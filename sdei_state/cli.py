"""The ``sdei-state`` command. Each subcommand is a thin shell over a library function.

User mistakes (bad files, malformed scenarios, bad register ids) end in one line on stderr,
``sdei-state: <what was wrong>``, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import SdeiStateError
from .selftest.report import REPORTERS

EXIT_USAGE = 2


class UserError(SdeiStateError):
    """A command-line mistake; printed as one line, exit status 2."""


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}") from None


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}") from None


def _dump(obj: Any, indent: int | None = None) -> None:
    sys.stdout.write(json.dumps(obj, indent=indent) + "\n")


# -- selftest -------------------------------------------------------------------------------

def cmd_selftest(a: argparse.Namespace) -> int:
    from .selftest import main as selftest_main

    return selftest_main(backend=a.backend, fmt=a.format, output=a.output,
                         suites=a.suite or None, cases=a.case or None, list_only=a.list)


# -- replay / scenarios ---------------------------------------------------------------------

def cmd_replay(a: argparse.Namespace) -> int:
    from . import scenario

    doc = scenario.load(_read_text(a.file), "stdin" if a.file == "-" else a.file)
    _dump(scenario.run(doc), a.indent)
    return 0


def cmd_scenario_generate(a: argparse.Namespace) -> int:
    from . import scenario

    if a.steps < 0 or not 1 <= a.vcpus <= scenario.MAX_VCPUS:
        raise UserError(f"--steps must be >= 0 and --vcpus 1..{scenario.MAX_VCPUS}")
    _dump(scenario.generate(a.steps, a.vcpus, a.seed))
    return 0


# -- the lab --------------------------------------------------------------------------------

def cmd_lab(a: argparse.Namespace) -> int:
    from .lab import main as lab_main

    return lab_main(list(a.lab_args))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sdei-state",
        description="arm64 SDEI for KVM guests: reference model, firmware-register ABI, "
                    "KVM bindings, selftests.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser(
        "selftest", help="run the conformance suites on the best backend",
        description="Run the conformance suites on the best backend, the kselftest way.",
        epilog="exit status: 0 every case that ran passed, 1 a case failed, 4 nothing could "
               "run (every case skipped, kselftest's KSFT_SKIP), 2 a usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--backend", choices=("auto", "sim", "kvm"), default="auto",
                   help="auto: arm64 KVM if usable, else the simulated vCPU (default); kvm "
                        "where it is unusable skips every case")
    s.add_argument("--format", choices=tuple(REPORTERS), default="text",
                   help="text (default), tap (TAP version 13 as kselftest prints it), json "
                        "(one document) or junit (XML)")
    s.add_argument("-o", "--output", metavar="FILE",
                   help="write the report here instead of stdout")
    s.add_argument("--suite", action="append", metavar="NAME",
                   help="run only the suites NAME matches (a shell glob; repeatable)")
    s.add_argument("--case", action="append", metavar="NAME",
                   help="run only the cases NAME matches: a case name or SUITE/CASE, a shell "
                        "glob (repeatable)")
    s.add_argument("--list", action="store_true",
                   help="print the chosen cases as SUITE/CASE, one per line; run nothing")
    s.set_defaults(func=cmd_selftest)

    s = sub.add_parser("replay", help="run a scenario (JSON) on simulated vCPUs")
    s.add_argument("file", help="scenario file, or - for stdin")
    s.add_argument("--indent", type=int, default=None, help="pretty-print the result")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("scenario", help="scenario tools")
    ssub = s.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    g = ssub.add_parser("generate", help="print a random guest-like scenario")
    g.add_argument("--steps", type=int, default=10000)
    g.add_argument("--vcpus", type=int, default=4)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_scenario_generate)

    _add_register_commands(sub)

    s = sub.add_parser("lab", help="the emulated arm64 KVM host (see docs/lab.md)",
                       add_help=False)
    s.add_argument("lab_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_lab)
    return p


def _add_register_commands(sub: Any) -> None:
    """regs, decode, blob and vectors (they live in cli_regs to keep this file short)."""
    from .cli_regs import add_commands

    add_commands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:  # the lab has its own parser (options before its subcommand too)
        from .lab import main as lab_main

        try:
            return lab_main(argv[1:])
        except SdeiStateError as e:
            print(f"sdei-state: {e}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SdeiStateError as e:
        print(f"sdei-state: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
