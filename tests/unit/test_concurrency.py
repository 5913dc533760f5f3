"""Concurrency keys: templates rendered from payloads, and the limits that override them."""

from __future__ import annotations

from typing import Any

import pytest

from botyard.automations.context import JobContext
from botyard.automations.registry import Registry, automation
from botyard.concurrency import ConcurrencyLimits, render_key, template_fields
from botyard.errors import AutomationError, PayloadInvalid
from botyard.settings import Settings


def test_a_template_names_payload_keys() -> None:
    assert template_fields("mfn:{account}") == ["account"]
    assert template_fields("{provider}/{account}-{{literal}}") == ["provider", "account"]
    assert template_fields("one shared key") == []


@pytest.mark.parametrize(
    "template", ["mfn:{}", "mfn:{0}", "{a.b}", "{a[0]}", "{a!r}", "{a:>5}", "{"]
)
def test_a_template_takes_plain_names_only(template: str) -> None:
    with pytest.raises(ValueError, match="concurrency key"):
        template_fields(template)


def test_the_key_is_rendered_from_the_payload() -> None:
    assert render_key("mfn:{account}", {"account": "ops", "circuit": "C1"}) == "mfn:ops"
    assert render_key("{a}|{b}|{c}|{d}", {"a": 5, "b": None, "c": True, "d": [1, "x"]}) == (
        '5||true|[1,"x"]'
    )


def test_a_key_the_payload_lacks_is_a_payload_error() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        render_key("mfn:{account}:{region}", {"region": "west"})
    assert caught.value.errors == [
        {
            "loc": ["account"],
            "msg": "the concurrency key 'mfn:{account}:{region}' needs 'account', which is missing",
            "type": "missing",
        }
    ]


def test_a_key_longer_than_its_column_is_a_payload_error() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        render_key("mfn:{account}", {"account": "x" * 300})
    assert caught.value.errors[0]["type"] == "string_too_long"


def test_limits_are_read_as_patterns() -> None:
    limits = ConcurrencyLimits.parse(" mfn:*=2, portal:ops = 3 ,")
    assert limits.rules == (("mfn:*", 2), ("portal:ops", 3))
    assert str(limits) == "mfn:*=2,portal:ops=3"
    assert ConcurrencyLimits.parse(str(limits)) == limits
    assert limits.limit_for("mfn:ops", 1) == 2
    assert limits.limit_for("portal:ops", 1) == 3
    assert limits.limit_for("portal:sales", 1) == 1
    assert limits.limit_for("MFN:ops", 5) == 5  # case matters
    assert ConcurrencyLimits.parse('{"a:*": 4}').rules == (("a:*", 4),)
    assert ConcurrencyLimits.parse("").rules == ()


def test_the_key_itself_wins_then_the_first_pattern() -> None:
    limits = ConcurrencyLimits.parse("mfn:*=2,mfn:o*=4,mfn:ops=7")
    assert limits.limit_for("mfn:ops", 1) == 7
    assert limits.limit_for("mfn:other", 1) == 2


@pytest.mark.parametrize("text", ["mfn:*", "mfn:*=0", "mfn:*=-1", "mfn:*=two", "=2", "[1]"])
def test_unreadable_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ConcurrencyLimits.parse(text)


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTYARD_CONCURRENCY_LIMITS", "mfn:*=2,portal:ops=3")
    assert Settings().concurrency.limits.limit_for("mfn:sales", 1) == 2
    monkeypatch.setenv("BOTYARD_CONCURRENCY_LIMITS", "mfn:*=0")
    with pytest.raises(ValueError, match="BOTYARD_CONCURRENCY_LIMITS"):
        Settings()
    monkeypatch.delenv("BOTYARD_CONCURRENCY_LIMITS")
    assert Settings().concurrency.limits == ConcurrencyLimits()


def test_an_automation_renders_its_key_from_the_validated_payload() -> None:
    reg = Registry()

    @automation(
        "mfn.validation",
        registry=reg,
        concurrency_key="mfn:{account}",
        concurrency_limit=2,
    )
    def validate(ctx: JobContext, circuit_number: str, account: str = "default") -> None: ...

    item = reg.get("mfn.validation")
    assert item.concurrency_limit == 2
    assert item.concurrency_key_for(item.validate({"circuit_number": "C1"})) == "mfn:default"
    assert item.concurrency_key_for({"account": "ops"}) == "mfn:ops"


def test_an_automation_without_a_key_has_none() -> None:
    reg = Registry()

    @automation("mfn.status", registry=reg)
    def status(ctx: JobContext) -> None: ...

    item = reg.get("mfn.status")
    assert item.concurrency_key_for({}) is None
    assert item.concurrency_limit == 1


def test_a_key_over_a_parameter_the_function_lacks_is_refused_at_registration() -> None:
    with pytest.raises(AutomationError, match="names acount, which the function does not take"):

        @automation("mfn.typo", registry=Registry(), concurrency_key="mfn:{acount}")
        def typo(ctx: JobContext, account: str) -> None: ...

    with pytest.raises(AutomationError, match="is not a payload key"):

        @automation("mfn.index", registry=Registry(), concurrency_key="mfn:{account[0]}")
        def index(ctx: JobContext, account: str) -> None: ...

    with pytest.raises(AutomationError, match="concurrency_limit"):
        automation("mfn.zero", registry=Registry(), concurrency_key="x", concurrency_limit=0)


def test_a_function_taking_kwargs_may_name_any_key_and_misses_it_at_submission() -> None:
    reg = Registry()

    @automation("portal.any", registry=reg, concurrency_key="portal:{account}")
    def anything(ctx: JobContext, **payload: Any) -> None: ...

    item = reg.get("portal.any")
    assert item.concurrency_key_for(item.validate({"account": "ops"})) == "portal:ops"
    with pytest.raises(PayloadInvalid):
        item.concurrency_key_for(item.validate({"other": 1}))
