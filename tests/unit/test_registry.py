"""@automation: names, payload models from type hints, keyword binding."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest

from botyard.automations.context import JobContext
from botyard.automations.registry import Registry, automation, script_automation
from botyard.errors import AutomationError, PayloadInvalid, UnknownAutomation


def test_payload_is_validated_and_normalised_from_hints() -> None:
    reg = Registry()

    @automation("mfn.validation", registry=reg, idempotent=True, timeout=600)
    def validate(
        ctx: JobContext,
        circuit_number: str,
        when: date,
        mode: Literal["fast", "slow"] = "fast",
        count: int = 1,
    ) -> None: ...

    item = reg.get("mfn.validation")
    assert (item.provider, item.action, item.idempotent, item.timeout) == (
        "mfn",
        "validation",
        True,
        600,
    )
    assert item.validate({"circuit_number": "C1", "when": "2026-01-02", "count": "3"}) == {
        "circuit_number": "C1",
        "when": "2026-01-02",
        "mode": "fast",
        "count": 3,
    }
    kwargs = item.kwargs({"circuit_number": "C1", "when": "2026-01-02"})
    assert kwargs["when"] == date(2026, 1, 2)

    with pytest.raises(PayloadInvalid) as caught:
        item.validate({"when": "not a date", "mode": "medium", "extra": 1})
    locs = {tuple(e["loc"]) for e in caught.value.errors}
    assert locs == {("circuit_number",), ("when",), ("mode",), ("extra",)}
    with pytest.raises(PayloadInvalid):
        item.validate(["not", "an", "object"])


def test_kwargs_functions_accept_extra_keys() -> None:
    reg = Registry()

    @automation("data.export", registry=reg)
    def export(ctx: JobContext, table: str, **options: Any) -> None: ...

    assert reg.get("data.export").kwargs({"table": "t", "limit": 5}) == {"table": "t", "limit": 5}


def test_names_must_be_provider_dot_action_and_unique() -> None:
    reg = Registry()
    for bad in ("nodot", "Upper.case", ".x", "a."):
        with pytest.raises(AutomationError):
            automation(bad, registry=reg)(lambda ctx: None)

    @automation("a.b", registry=reg)
    def one(ctx: JobContext) -> None: ...

    with pytest.raises(AutomationError):

        @automation("a.b", registry=reg)
        def two(ctx: JobContext) -> None: ...

    with pytest.raises(UnknownAutomation):
        reg.get("a.c")


def test_positional_only_parameters_are_refused() -> None:
    with pytest.raises(AutomationError):
        automation("a.pos", registry=Registry())(lambda ctx, x, /: None)


def test_scripts_take_any_object(tmp_path: Path) -> None:
    reg = Registry()
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    item = script_automation("ops.script", script, registry=reg)
    assert item.validate({"anything": [1, 2]}) == {"anything": [1, 2]}
    with pytest.raises(AutomationError):
        script_automation("ops.missing", tmp_path / "nope.py", registry=reg)
