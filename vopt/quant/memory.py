"""Peak resident memory of a block of work (Linux: reset and read VmHWM; elsewhere: sample RSS)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Writing 5 to clear_refs resets the kernel's peak-RSS counter (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakRss:
    """with PeakRss() as m: ...; then m.peak_mb, m.start_mb, m.growth_mb."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0

    def __enter__(self) -> PeakRss:
        self.start_mb = (_status_kb("VmRSS") or 0) / 1024
        if _reset_peak() and _status_kb("VmHWM") is not None:
            self.method = "VmHWM (reset at start)"
        else:
            self.method = "sampled RSS"
            self._sampled = _status_kb("VmRSS") or 0
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sampled = max(self._sampled, _status_kb("VmRSS") or 0)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = self._sampled / 1024
        else:
            self.peak_mb = (_status_kb("VmHWM") or 0) / 1024
        self.peak_mb = max(self.peak_mb, self.start_mb)

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb

    def report(self) -> dict[str, float | str]:
        return {
            "peak_rss_mb": round(self.peak_mb, 1),
            "start_rss_mb": round(self.start_mb, 1),
            "growth_mb": round(self.growth_mb, 1),
            "rss_method": self.method,
        }
