"""`vopt.errors.first_line`: the one way vopt quotes a library's error in a one-line message. It must never
raise, whatever the exception carries (issue 29: `"".splitlines()[0]` on an empty AssertionError crashed the
handler that should have retried)."""

from __future__ import annotations

import pytest

from vopt.errors import first_line


class _BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


class _NotAStr(Exception):
    def __str__(self):  # type: ignore[override]
        return 42


@pytest.mark.parametrize(
    "exc, expected",
    [
        (AssertionError(), "AssertionError"),  # `assert x` with no message
        (RuntimeError(""), "RuntimeError"),
        (ValueError("\n\n   \n"), "ValueError"),  # only blank lines
        (RuntimeError("first\nsecond\nthird"), "first"),
        (RuntimeError("\n\n  [ONNXRuntimeError] : 1 : FAIL  \nstack"), "[ONNXRuntimeError] : 1 : FAIL"),
        (RuntimeError("a\r\nb"), "a"),
        (KeyError(3), "3"),  # non-string messages
        (KeyError("true"), "'true'"),
        (Exception(None), "None"),
        (Exception(b"bytes"), "b'bytes'"),
        (Exception(1, 2), "(1, 2)"),
        (_BrokenStr("hidden"), "_BrokenStr"),  # str() raises
        (_NotAStr(), "_NotAStr"),  # str() raises TypeError: __str__ returned non-string
    ],
)
def test_first_line_of_an_exception(exc: BaseException, expected: str) -> None:
    assert first_line(exc) == expected


def test_first_line_fallback_type_prefix_and_limit() -> None:
    assert first_line(AssertionError(), fallback="shape inference failed") == "shape inference failed"
    assert first_line(_BrokenStr(), fallback="?") == "?"
    assert first_line(ValueError("bad shape\nmore"), with_type=True) == "ValueError: bad shape"
    # the type name alone stands for an empty message, not "AssertionError: AssertionError"
    assert first_line(AssertionError(), with_type=True) == "AssertionError"
    assert first_line(RuntimeError("x" * 1000)) == "x" * 300
    assert first_line(RuntimeError("x" * 1000), limit=120) == "x" * 120
    assert first_line(RuntimeError("abc\ndef"), limit=2) == "ab"
    assert len(first_line(RuntimeError("e" * 500), with_type=True, limit=50)) == 50


def test_first_line_of_text_and_of_huge_messages() -> None:
    assert first_line("") == ""
    assert first_line("", fallback="none") == "none"
    assert first_line("  \n  only line  \n") == "only line"
    # a message of megabytes (a graph dump) is cut from its head, not split whole
    huge = RuntimeError("head line\n" + "y" * 30_000_000)
    assert first_line(huge) == "head line"
    assert first_line(RuntimeError("z" * 30_000_000), limit=10) == "z" * 10
