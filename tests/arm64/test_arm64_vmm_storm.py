"""Pause requests under a kick-signal storm on real arm64 KVM (16 vCPU threads, guests
signalling each other): every thread parks having started at most one more KVM_RUN, and no
SDEI event is lost or taken twice (``sdei_state.vmm.reference.storm``)."""

from __future__ import annotations

import pytest

from sdei_state.vmm.reference import storm


@pytest.mark.usefixtures("smccc_filter")
def test_pause_under_signal_storm_is_prompt_and_loses_nothing() -> None:
    r = storm.run(16, cycles=5, run_ms=50.0)
    assert r.kicks_sent > 0 and r.signals > 0
    assert r.extra_runs_max <= 1, r
    assert r.lost_or_doubled == 0, r
    assert r.signals == r.entered + r.pending_at_end, r
