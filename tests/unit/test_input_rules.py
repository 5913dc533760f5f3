"""The API's rules for text and JSON, on their own (the app-wide checks are integration tests)."""

from __future__ import annotations

import json

import pytest

from botyard.errors import InvalidInput
from botyard.orchestrator.input_rules import MAX_JSON_DEPTH, load_json, problem


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("plain", None),
        ("emoji \U0001f600 and accents é", None),
        ("\ufffd is a replacement, not a surrogate", None),
        ("cut \ud83d", "lone_surrogate"),
        ("\udc00 low", "lone_surrogate"),
        ("nul \x00", "nul_character"),
    ],
)
def test_what_text_is_refused(text: str, kind: str | None) -> None:
    assert problem(text) == kind


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def test_the_depth_limit_counts_arrays_and_objects() -> None:
    assert load_json(nested(MAX_JSON_DEPTH)) is not None
    assert load_json('{"a": ' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH) is not None
    for deep in (nested(MAX_JSON_DEPTH + 1), '{"a": ' * 65 + "1" + "}" * 65):
        with pytest.raises(InvalidInput) as caught:
            load_json(deep)
        assert caught.value.errors[0]["type"] == "json_too_deep"


def test_a_document_far_past_any_recursion_limit_is_refused_without_recursing() -> None:
    with pytest.raises(InvalidInput):
        load_json(nested(500_000))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"note": "[" * 500 + '\\"{' * 100, "list": ["]]]", "{{{"]})
    assert load_json(text)["list"] == ["]]]", "{{{"]


def test_wide_documents_are_not_deep() -> None:
    assert len(load_json("[" + ",".join(["[[1]]"] * 10_000) + "]")) == 10_000


def test_where_the_bad_text_is_without_repeating_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        load_json('{"a": [1, {"b": "x\\ud83d"}]}', ("body",))
    assert caught.value.errors == [
        {
            "loc": ["body", "a", 1, "b"],
            "msg": caught.value.errors[0]["msg"],
            "type": "lone_surrogate",
        }
    ]
    with pytest.raises(InvalidInput) as caught:
        load_json('{"ok": {"bad\\u0000key": 1}}', ("body",))
    assert caught.value.errors[0]["loc"] == ["body", "ok"]  # the key itself is not echoed


def test_raw_utf8_surrogate_bytes_are_refused_like_escapes() -> None:
    with pytest.raises(InvalidInput):
        load_json(b'{"a": "\xed\xa0\xbd"}')


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]", "1e400"])
def test_numbers_are_finite(text: str) -> None:
    with pytest.raises((InvalidInput, ValueError)):
        load_json(text)


def test_text_that_is_not_json_is_a_value_error() -> None:
    for text in ("{not json", b"\xff\xfe\x00", "[1,"):
        with pytest.raises(ValueError):
            load_json(text)
