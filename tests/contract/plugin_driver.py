"""Run the vopt CLI in a child process with one registry line added first, as a plugin shipped in vopt would
have it (the recipe's `compile:` union and the family table are made from the registry when first used)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO

_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from vopt import registry
    exec(sys.argv[2])  # the one registry line
    from vopt.cli.app import main
    sys.argv = ["vopt", *sys.argv[3:]]
    main()
""")


def vopt_with(plugin_dir: Path, registry_line: str, *args: str) -> subprocess.CompletedProcess:
    """`vopt ARGS` with `plugin_dir` importable and `registry_line` run against vopt.registry first."""
    env = {**os.environ, "VOPT_CACHE_DIR": str(plugin_dir / "cache"), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, str(plugin_dir), registry_line, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
