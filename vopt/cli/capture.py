"""What libraries print while vopt works (NNCF's progress bars, onnxsim's "failed to run" warnings, ONNX
Runtime's and OpenVINO's log lines, HF loaders' notes) is captured at the file-descriptor level, so C++ code
writing to fd 2 is caught as well as Python writing to sys.stdout, and comes back as one summary line per
source. vopt's own console keeps writing to the real terminal or log meanwhile. `--debug` turns it off."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, TextIO

# Progress bars: rich's (━ ╸), tqdm's (`45%|████▌ | 9/20 [...]`) and other block-character bars.
_BAR = re.compile(r"[━╸╺█▉▊▋▌▍▎▏]|\d+%\|.*\||\b\d+/\d+ \[\d\d:\d\d")
# Dumps a library prints just before it raises the error vopt reports (with the op and the module): dropped,
# with the indented lines that follow them. torch.onnx.export prints the whole TorchScript graph.
_DUMP = re.compile(r"^Torch IR graph at exception:")
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")

# (source, what, level, pattern) in order of precedence; `level` is warning when the lines are.
_KINDS: list[tuple[str, str, str, re.Pattern[str]]] = [
    ("onnxsim", "'failed to run' warnings", "warning", re.compile(r"^WARNING: failed to run \"")),
    (
        "onnxruntime",
        "warnings and errors",
        "warning",
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[WE]:onnxruntime:"),
    ),
    (
        "onnxruntime",
        "log lines",
        "info",
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[IV]:onnxruntime:"),
    ),
    ("nncf", "warnings", "warning", re.compile(r"^(WARNING|ERROR|CRITICAL):nncf:")),
    ("nncf", "log lines", "info", re.compile(r"^(INFO|DEBUG):nncf:")),
    ("openvino", "warnings", "warning", re.compile(r"^\[ ?(WARNING|ERROR|WARN) ?\]")),
    ("openvino", "log lines", "info", re.compile(r"^\[ ?(INFO|DEBUG) ?\]")),
    ("python", "warnings", "warning", re.compile(r"^\S+:\d+: \w*Warning: ")),
]


@dataclass
class Group:
    source: str
    what: str
    level: str
    count: int = 0
    first: str = ""


@dataclass
class Summary:
    groups: list[Group] = field(default_factory=list)
    bars: int = 0  # progress-bar redraws, dropped: vopt shows its own progress

    def lines(self, max_first: int = 160) -> list[tuple[str, str]]:
        """(level, text) per source and kind: `onnxsim: 210 'failed to run' warnings (first: ...)`."""
        found = []
        for g in self.groups:
            first = g.first if len(g.first) <= max_first else g.first[: max_first - 3] + "..."
            noun = g.what if g.count != 1 else _singular(g.what)
            found.append((g.level, f"{g.source}: {g.count} {noun} (first: {first}); --debug shows them"))
        return found


def _singular(what: str) -> str:
    return {
        "'failed to run' warnings": "'failed to run' warning",
        "warnings and errors": "warning or error",
        "log lines": "log line",
        "warnings": "warning",
        "lines of output": "line of output",
    }.get(what, what)


def summarise(text: str) -> Summary:
    """Captured text -> one group per (source, kind): how many lines and the first. A line that starts with
    white space continues the one before it (a Python warning's source line, a traceback), and is not
    counted."""
    summary = Summary()
    groups: dict[tuple[str, str], Group] = {}
    dumping = False
    for raw in re.split(r"\r\n|\r|\n", _ANSI.sub("", text)):
        line = raw.rstrip()
        if not line.strip():
            continue
        if _BAR.search(line):
            summary.bars += 1
            continue
        if _DUMP.search(line):
            dumping = True
            continue
        if line[0].isspace() and (groups or dumping):
            continue
        dumping = False
        source, what, level = next(
            ((s, w, lv) for s, w, lv, pattern in _KINDS if pattern.search(line)),
            ("library", "lines of output", "info"),
        )
        group = groups.get((source, what))
        if group is None:
            group = groups[(source, what)] = Group(source, what, level, first=line.strip())
            summary.groups.append(group)
        group.count += 1
    return summary


class _Sink(io.TextIOBase):
    """sys.stdout and sys.stderr while capturing: writes go to the capture running now. A library that keeps
    a reference to it (NNCF's log handler takes sys.stdout when NNCF is imported, transformers' takes
    sys.stderr) writes into the next capture, and between captures into the void: never into the stdout that
    `--json` owns."""

    def __init__(self) -> None:
        self.target: Any = None

    def write(self, text: str) -> int:
        target = self.target
        if target is not None:
            target.write(text)
        return len(text)

    def flush(self) -> None:
        target = self.target
        if target is not None:
            target.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


_SINK = _Sink()


def _fflush() -> None:
    """C stdio buffers (printf from a native library) out before the file descriptors move."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


class Capture:
    """capture = Capture(); capture.start(); ...; text = capture.stop(). While running, fds 1 and 2 and
    sys.stdout/sys.stderr go to one temporary file (so the order of lines is kept); `real_stderr` is where
    vopt's own console should write meanwhile."""

    def __init__(self) -> None:
        self._tmp: Any = None
        self._saved_fds: dict[int, int] = {}
        self._saved_streams: tuple[TextIO, TextIO] | None = None
        self._text_file: Any = None
        self._taken = 0  # bytes of the file already handed out by take()
        self.real_stderr: TextIO | None = None

    def start(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        _fflush()
        self._tmp = tempfile.TemporaryFile(prefix="vopt-output-")  # noqa: SIM115 - closed in stop()
        original_err = sys.stderr
        for fd in (1, 2):
            try:
                self._saved_fds[fd] = os.dup(fd)
                os.dup2(self._tmp.fileno(), fd)
            except OSError:  # a closed descriptor: nothing to capture there
                self._saved_fds.pop(fd, None)
        self.real_stderr = self._real(original_err)
        self._saved_streams = (sys.stdout, sys.stderr)
        self._text_file = io.TextIOWrapper(
            io.FileIO(os.dup(self._tmp.fileno()), "w"),
            encoding="utf-8",
            errors="replace",
            line_buffering=True,
        )
        _SINK.target = self._text_file
        sys.stdout = sys.stderr = _SINK  # type: ignore[assignment]

    def _real(self, stream: TextIO) -> TextIO:
        """The stream vopt's console writes to while fd 2 is captured: the original sys.stderr, or, when that
        writes to fd 2 itself, a stream on the saved descriptor."""
        try:
            fileno = stream.fileno()
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return stream
        if fileno not in self._saved_fds:
            return stream
        return io.TextIOWrapper(
            io.FileIO(self._saved_fds[fileno], "w", closefd=False),
            encoding=getattr(stream, "encoding", None) or "utf-8",
            errors="replace",
            line_buffering=True,
        )

    def take(self) -> str:
        """What was captured since the last take() (or the start), while capturing goes on: a step's share of
        a capture that spans several steps."""
        if self._tmp is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            _SINK.flush()
        _fflush()
        end = os.fstat(self._tmp.fileno()).st_size
        # pread: the file's offset is shared with fds 1 and 2, which keep writing at it
        data = os.pread(self._tmp.fileno(), max(0, end - self._taken), self._taken)
        self._taken += len(data)
        return data.decode("utf-8", errors="replace")

    def stop(self) -> str:
        """Restore everything; return what was captured (since the last take())."""
        if self._tmp is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            _SINK.flush()
        _fflush()
        if self._saved_streams is not None:
            sys.stdout, sys.stderr = self._saved_streams
        for fd, saved in self._saved_fds.items():
            os.dup2(saved, fd)
        if self.real_stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                self.real_stderr.flush()
        for saved in self._saved_fds.values():
            os.close(saved)
        self._saved_fds = {}
        _SINK.target = None
        if self._text_file is not None:
            self._text_file.close()
        self._tmp.seek(self._taken)
        text = self._tmp.read().decode("utf-8", errors="replace")
        self._tmp.close()
        self._tmp = None
        self._taken = 0
        self.real_stderr = None
        return text
