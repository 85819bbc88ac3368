"""Typed errors. Each maps to one exit code, so CI can tell failures apart."""

from __future__ import annotations


class VoptError(Exception):
    """Base error: printed as one or more lines, never as a traceback (unless --debug)."""

    exit_code = 1

    def __init__(self, message: str, *, lines: list[str] | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.lines = lines or []
        self.hint = hint


class BuildError(VoptError):
    """A stage failed. The message names the stage (and the op, where known)."""

    exit_code = 1

    def __init__(self, message: str, *, stage: str | None = None, **kw):
        super().__init__(f"[{stage}] {message}" if stage else message, **kw)
        self.stage = stage


class RecipeError(VoptError):
    """Bad recipe or bad usage: one line per problem with file:line and key path."""

    exit_code = 2


class GateFailed(VoptError):
    """A validation gate did not hold."""

    exit_code = 3

    def __init__(self, message: str, *, failures: list[dict] | None = None, **kw):
        super().__init__(message, **kw)
        self.failures = failures or []


class BackendUnavailable(VoptError):
    """A runtime, package or piece of hardware the build needs is missing."""

    exit_code = 4


def missing_extra(package: str, extra: str, what: str | None = None) -> BackendUnavailable:
    """The one-line error for a missing optional backend."""
    what = what or package
    return BackendUnavailable(f"{what} needs the '{package}' package: pip install 'vopt[{extra}]'")


def first_line(exc: object, fallback: str | None = None, *, limit: int = 300, with_type: bool = False) -> str:
    """The first non-blank line of an exception's message (or of any text), cut to `limit` characters: what a
    one-line error quotes from a library.

    Never raises: an empty message (`assert x` raises `AssertionError()`), a message of blank lines, a
    non-string message (`KeyError(3)`, `Exception(None)`) and an exception whose `__str__` itself raises all
    give a line. An empty or unreadable message gives `fallback`, or else the exception's type name (for
    text, an empty string). `with_type=True` prefixes the type name ("ValueError: bad shape"); the type name
    alone stands for an empty message."""
    name = type(exc).__name__ if isinstance(exc, BaseException) else ""
    try:
        text = exc if isinstance(exc, str) else str(exc)
    except Exception:  # a broken __str__ (or __repr__ behind it) must not hide the error being reported
        text = ""
    # only the head is split: a library message can be megabytes (a whole graph dump)
    head = text.lstrip()[: limit + 1]
    line = head.splitlines()[0].strip() if head else ""
    if not line:
        return (fallback if fallback is not None else name)[:limit]
    if with_type and name:
        line = f"{name}: {line}"
    return line[:limit]
