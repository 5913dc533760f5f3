"""The fence margin: how long before its lease may expire an unrenewed job's tree is killed."""

from __future__ import annotations

import pytest

from botyard.worker.config import WorkerConfig


@pytest.mark.parametrize(
    ("lease_ttl", "margin"),
    [
        (1.0, 0.25),  # renewals every 0.5 s: 0.5 s of margin would leave one interval
        (1.5, 0.5),
        (2.0, 0.5),  # before: 0.25 s, too little for a kill on a loaded host
        (6.0, 0.6),
        (30.0, 2.0),
        (300.0, 2.0),
    ],
)
def test_the_margin_has_a_floor_and_leaves_two_renewals(lease_ttl: float, margin: float) -> None:
    config = WorkerConfig(automations=[], worker_id="w", lease_ttl=lease_ttl)
    assert config.fence_margin == pytest.approx(margin)
    assert lease_ttl - config.fence_margin >= min(2 * config.renew_interval, lease_ttl - 0.25)
