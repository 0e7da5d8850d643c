"""Every conformance scenario, built once, in the order the vector numbering follows.

The order is written out here, not taken from the order modules happen to be imported in:
``vectors/NN-name`` is named by position in ``SCENARIOS``, so a new scenario goes at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from . import calls, handlers, linux, migration, registers
from .steps import Conformance

_BUILDERS: Final[tuple[Callable[[], Conformance], ...]] = (
    calls.version_features,              # 01
    calls.get_info,
    calls.register_checks,
    calls.enable_disable_unregister,
    calls.handler_states,                # 05
    calls.pending_and_mask,
    calls.dispatch_entry,
    calls.complete,
    calls.complete_and_resume,
    calls.context_and_complete_denied,   # 10
    calls.interrupt_bind_routing,
    handlers.nested_critical,
    handlers.critical_first,
    handlers.relative_mode,
    handlers.masked_vcpu,                # 15
    handlers.unregister_pending,
    handlers.private_reset,
    handlers.signal_by_mpidr,
    handlers.inject,
    handlers.disable_while_running,      # 20
    handlers.aarch32_and_el2,
    registers.reset_values,
    registers.set_reg_state,
    registers.set_reg_entry_points,
    registers.set_reg_contexts,          # 25
    registers.unknown_ids,
    registers.feature_gate_off,
    registers.firmware_registers,
    registers.bitmap_ebusy,
    migration.migrate_normal_handler,    # 30
    migration.migrate_nested,
    migration.migrate_unregister_pending,
    migration.migrate_relative,
    migration.migrate_masked,
    migration.migrate_pending_critical,  # 35
    linux.linux_boot,
    handlers.entry_pstate_sctlr,
    registers.feature_gate_off_written_state,
)

SCENARIOS: Final[tuple[Conformance, ...]] = tuple(build() for build in _BUILDERS)
"""Every conformance scenario, in a stable order (the vector numbering follows it)."""

BY_NAME: Final[Mapping[str, Conformance]] = MappingProxyType({c.name: c for c in SCENARIOS})
if len(BY_NAME) != len(SCENARIOS):
    raise AssertionError("conformance scenario names must be unique")
