"""``sdei-state replay`` and ``sdei-state scenario generate``: scenarios on simulated vCPUs or
on real arm64 KVM (the format and the backends are in docs/scenarios.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ..state import U64_MAX
from .common import MAX_STEPS, MAX_VCPUS, UserError, dump, int_arg, read_text, source_name


def cmd_replay(a: argparse.Namespace) -> int:
    from .. import scenario

    doc = scenario.load(read_text(a.file), source_name(a.file))
    n = doc.get("vcpus") if isinstance(doc, dict) else None
    if type(n) is int and n > MAX_VCPUS:  # before the simulated VM allocates anything
        raise UserError(f"{source_name(a.file)}: 'vcpus' is {n}; replay simulates at most "
                        f"{MAX_VCPUS} vCPUs")
    factory = None
    if a.backend != "sim":
        from ..errors import SdeiStateError
        from ..scenario.kvm_replay import vm_factory

        scenario.parse(doc)  # a bad scenario is refused before /dev/kvm is opened
        try:
            factory = vm_factory(a.backend)
        except SdeiStateError as e:
            raise UserError(f"--backend {a.backend}: {e}") from None
    dump(scenario.run(doc, factory))
    return 0


def cmd_scenario_generate(a: argparse.Namespace) -> int:
    from .. import scenario

    dump(scenario.generate(a.steps, a.vcpus, a.seed))
    return 0


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "replay", help="run a scenario (JSON) on simulated or real vCPUs; print the result",
        description="Run a scenario on simulated vCPUs (sim), on real arm64 KVM vCPUs with "
                    "the userspace provider (kvm-provider: Linux 6.4+) or with the kernel's "
                    "own SDEI (kvm-kernel: the kernel/ series), and print the result document "
                    "(every step's x0-x3, the final state of every vCPU) as JSON.",
        epilog="exit status: 0 replayed, 2 the scenario is unusable (one line names the step) "
               f"or has more than {MAX_VCPUS} vCPUs")
    s.add_argument("file", help="scenario file (UTF-8 JSON, at most 16 MiB), or - for stdin")
    s.add_argument("--backend", choices=("sim", "kvm-provider", "kvm-kernel"), default="sim",
                   help="where the vCPUs are (default sim)")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("scenario", help="scenario tools: generate",
                       description="Scenario tools.")
    ssub = s.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    g = ssub.add_parser("generate", help="print a random guest-like scenario as JSON",
                        description="Print a random but guest-like scenario (calls, signals, "
                                    "dispatches, migrations) as JSON, for replay.")
    g.add_argument("--steps", type=int_arg(0, MAX_STEPS), default=10000,
                   help=f"number of steps, 0..{MAX_STEPS} (default 10000)")
    g.add_argument("--vcpus", type=int_arg(1, MAX_VCPUS), default=4,
                   help=f"number of vCPUs, 1..{MAX_VCPUS} (default 4)")
    g.add_argument("--seed", type=int_arg(0, U64_MAX), default=0,
                   help="random seed, 0..2**64-1 (default 0); one seed, one scenario")
    g.set_defaults(func=cmd_scenario_generate)
