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
