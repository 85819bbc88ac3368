"""Facts about the machine a build runs on (for manifests, doctor and benchmark cache keys)."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's marketing name ('Intel(R) Xeon(R) Processor'), where the OS tells."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
