"""The ``replay`` suite: scenarios replayed on real KVM agree with the simulated vCPUs.

Every conformance scenario (the scenarios of the migration vectors in ``vectors/``) and a
generated 10,000-step scenario of 4 vCPUs run with ``sdei-state replay``'s runner on the
simulated backend and on the real-KVM backend this kernel supports: ``kvm-kernel`` where the
kernel serves SDEI itself, else ``kvm-provider`` (the provider refuses to serve beside an
in-kernel SDEI, so the two KVM backends need two boots: the lab's Debian kernel and the
``sdei`` one). Results must be identical as ``scenario.agreement`` compares them; the counts
go into the report's notes.

Three conformance scenarios are not compared, each for a reason the note repeats
(``NOT_COMPARED``): one puts the CPU at EL2h and EL3h, which KVM's ``set_core_reg()`` refuses
for a vCPU without nested virtualization; two give SP a value at one exception level and then
change level, where the simulated vCPU keeps one SP while a real CPU banks SP_EL0 and SP_EL1
(and its ONE_REG core ``sp`` is the current SP, where KVM's is SP_EL0): a gap of the model,
not of either KVM backend (docs/kernel.md, "What was verified").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from .core import Case, CheckFailed, Suite

GENERATED_STEPS: Final = 10_000
_BANKED_SP: Final = ("the simulated vCPU keeps one SP across an exception level change; a real "
                     "CPU banks SP_EL0/SP_EL1")
NOT_COMPARED: Final = {
    "aarch32-and-el2": "sets PSTATE EL2h and EL3h, which KVM refuses for a vCPU without "
                       "nested virtualization",
    "dispatch-entry": _BANKED_SP,
    "migrate-normal-handler": _BANKED_SP,
}


def _conformance() -> Iterable[tuple[str, object]]:
    from ..scenario.conformance import SCENARIOS

    return [(c.name, c.scenario) for c in SCENARIOS if c.name not in NOT_COMPARED]


def _generated() -> Iterable[tuple[str, object]]:
    from ..scenario import generate

    return [(f"generated-{GENERATED_STEPS}", generate(GENERATED_STEPS, 4, 0))]


def _case(name: str, docs: Callable[[], Iterable[tuple[str, object]]], doc: str) -> Case:
    def run(backend: Any) -> None:
        from ..scenario.agreement import agree
        from ..scenario.kvm_replay import vm_factory

        kind = "kvm-kernel" if backend.in_kernel else "kvm-provider"
        out = agree(docs(), None, vm_factory(kind, backend.kvm))
        notes = backend.memo.setdefault("notes", [])
        notes.append(f"replay {name}: " + out.summary("sim", kind))
        if name == "conformance-scenarios":
            notes.extend(f"replay: not compared: {k}: {why}" for k, why in NOT_COMPARED.items())
        if out.mismatches:
            more = f" (+{len(out.mismatches) - 1} more)" if len(out.mismatches) > 1 else ""
            raise CheckFailed(f"{kind} differs from sim: {out.mismatches[0]}{more}")

    return Case(name, run, doc)


def suite() -> Suite:
    return Suite("replay", "scenarios replayed on real KVM (provider or in-kernel SDEI) give "
                 "the simulated vCPUs' results",
                 (_case("conformance-scenarios", _conformance,
                        "every conformance scenario (= every migration vector)"),
                  _case("generated-10000-steps", _generated,
                        f"a generated scenario of {GENERATED_STEPS} steps on 4 vCPUs")),
                 frozenset({"kvm", "sdei"}))
