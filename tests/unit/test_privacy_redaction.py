"""The helpers that find and redact a data subject inside JSON values and log text."""

from __future__ import annotations

from botyard.store.privacy import REDACTED, mentions, redact_mentions, redact_text, redact_values


def test_mentions_looks_into_every_string_and_key_ignoring_case() -> None:
    value = {"order": {"lines": [{"customer": "Zoë MBEKI"}]}, "count": 3}
    assert mentions(value, "zoë mbeki".casefold())
    assert not mentions(value, "zoe")
    assert not mentions({"n": 12345}, "12345")  # numbers are not text the subject is named in
    assert mentions({"Zoë Mbeki": True}, "zoë mbeki")


def test_redact_text_replaces_every_occurrence_in_any_case() -> None:
    text = "logged in as ACC-7 then acc-7 again; ACC-70 too"
    assert (
        redact_text(text, "acc-7")
        == f"logged in as {REDACTED} then {REDACTED} again; {REDACTED}0 too"
    )
    assert redact_text("in der Straße 4", "STRAßE") == f"in der {REDACTED} 4"
    assert redact_text("in der STRASSE 4", "Straße") == REDACTED  # only case folding matches


def test_redact_values_keeps_the_shape() -> None:
    value = {"name": "Zoë", "lines": [1, {"x": None}], "ok": True}
    assert redact_values(value) == {
        "name": REDACTED,
        "lines": [REDACTED, {"x": None}],
        "ok": REDACTED,
    }
    assert redact_values(None) is None


def test_redact_mentions_leaves_other_text_alone() -> None:
    error = {
        "type": "PortalError",
        "message": "no circuit for Zoë Mbeki",
        "codes": [4, "zoë mbeki"],
    }
    assert redact_mentions(error, "Zoë Mbeki") == {
        "type": "PortalError",
        "message": f"no circuit for {REDACTED}",
        "codes": [4, REDACTED],
    }
