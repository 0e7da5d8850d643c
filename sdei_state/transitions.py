"""The handler-state transitions of SDEI: one table, laid out like DEN0054C Table 14 and TF-A's
``sdei_state_table`` (``lib/sdei/sdei_state.c``), plus the dispatch transition TF-A adds.

``machine`` checks arguments and applies side effects around it; docs/state-machine.md is
generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final

from .state import HandlerState


class Action(IntEnum):
    """Columns of the transition table (DEN0054C Table 14, plus dispatch as TF-A adds it)."""

    REGISTER = 0
    RELEASE = 1
    ENABLE = 2
    DISABLE = 3
    UNREGISTER = 4
    ROUTING_SET = 5
    CONTEXT = 6
    COMPLETE = 7
    COMPLETE_AND_RESUME = 8
    DISPATCH = 9


_S = HandlerState
_X = None  # forbidden in this state
_reg, _reG, _rEG = _S.UNREGISTERED, _S.REGISTERED, _S.ENABLED
_Reg, _ReG, _REG = _S.UNREGISTER_PENDING, _S.REGISTERED_RUNNING, _S.ENABLED_RUNNING

# fmt: off
# Rows: handler state. Cells: next state (the same state = permitted, no change) or _X.
# Capital letter = bit set: R(unning) E(nabled) G(registered), as in TF-A.
#            REGISTER RELEASE ENABLE DISABLE UNREGISTER ROUTING CONTEXT COMPLETE C_RESUME DISPATCH
_GRID: Final = {
    _reg: (  _reG,    _reg,   _X,    _X,     _X,        _X,     _X,     _X,      _X,      _X  ),
    _Reg: (  _X,      _X,     _X,    _X,     _X,        _X,     _Reg,   _reg,    _reg,    _X  ),
    _reG: (  _X,      _X,     _rEG,  _reG,   _reg,      _reG,   _X,     _X,      _X,      _X  ),
    _ReG: (  _X,      _X,     _REG,  _ReG,   _Reg,      _X,     _ReG,   _reG,    _reG,    _X  ),
    _rEG: (  _X,      _X,     _rEG,  _reG,   _reg,      _X,     _X,     _X,      _X,      _REG),
    _REG: (  _X,      _X,     _REG,  _ReG,   _Reg,      _X,     _REG,   _rEG,    _rEG,    _X  ),
}
# fmt: on

TRANSITIONS: Final[Mapping[HandlerState, Mapping[Action, HandlerState | None]]] = {
    state: dict(zip(Action, row, strict=True)) for state, row in _GRID.items()
}
"""state -> action -> next state, or None where the spec forbids the call in that state."""


def transition(state: HandlerState, action: Action) -> HandlerState | None:
    return TRANSITIONS[state][action]
