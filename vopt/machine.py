"""Facts about the machine a build runs on (for manifests, doctor and benchmark cache keys)."""

from __future__ import annotations

import importlib.metadata
import platform


def tool_versions(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{distribution: installed version, or "absent"}, sorted: what cache keys and manifests record."""
    versions = {}
    for name in sorted(set(names)):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


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
