"""Mutated copies of the shipped recipes never crash, hang or lose the file:line (issue 29).

On the commit before this test, 1,256 such recipes gave 31 `internal error: KeyError: 'true'` (keys that YAML
reads as booleans, null or numbers), 33 exits without a file:line (nesting deeper than the YAML parser goes,
`extends:` entries that are folders or unreadable) and 9 hangs of more than 20 s (`extends:` naming a FIFO or
/dev/urandom, a 30 MB string, a list of a million items). Here 1,070 recipes are made from every shipped
recipe by a seeded generator: key deletions, type swaps, non-text keys, deep nesting, huge strings and lists,
bad `extends:` entries, and FIFOs, devices and sockets as data, labels and weights paths. Each must plan, or
fail as `vopt check` fails: a RecipeError whose every problem names a file:line, within 5 s. The mutations
that are always wrong must be errors. The file takes 15 to 18 s of CPU (35 to 55 s wall on this project's
2-core machine while other builds ran)."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import re
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "recipes").glob("*.yaml")) + [REPO / "recipes" / "examples" / "demo.yaml"]
SAMPLES = REPO / "vopt" / "data" / "samples"
SEED = 29
CASE_SECONDS = 5.0
# How many recipes of each kind; "error" kinds are always wrong, "any" kinds may still be valid recipes.
KINDS: dict[str, tuple[int, str]] = {
    "delete_key": (300, "any"),
    "type_swap": (300, "any"),
    "non_text_key": (100, "error"),
    "deep_nesting": (40, "error"),
    "huge_string": (60, "error"),
    "huge_list": (50, "error"),
    "bad_extends": (120, "error"),
    "special_path": (100, "error"),
}
# file:line (any file: an `extends:` entry may name a binary) or the `--set` flag
LOCATED = re.compile(r"(^|\s)\S+:\d+: |--set ")
SWAPS: list[Any] = [
    0,
    -1,
    10**12,
    1.5,
    math.nan,
    math.inf,
    True,
    None,
    "",
    "x",
    "../../etc/passwd",
    "${env:VOPT_FUZZ_UNSET}",
    [],
    [1, 2],
    {},
    {"a": 1},
]
NON_TEXT_KEYS: list[Any] = [True, False, None, 1, 0, -7, 1.5]


class Hung(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hung in this thread after `seconds` (a blocked open() of a FIFO is interrupted too), then put
    back whatever alarm was set before (pytest-timeout's)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Hung(f"still running after {seconds} s")

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _raise)
    old_left, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_left:
            signal.setitimer(signal.ITIMER_REAL, max(old_left - (time.monotonic() - start), 0.01))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path and list index under `node`."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _mappings(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _mappings(v, (*prefix, k))
    return out


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def _put(data: dict, dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


class Special:
    """The hostile files a recipe may point at, made once per test."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir()
        self.fifo = root / "pipe"
        os.mkfifo(self.fifo)
        os.mkfifo(root / "pipe.jpg")
        os.mkfifo(root / "pipe.npy")
        self.pipe_jpg, self.pipe_npy = root / "pipe.jpg", root / "pipe.npy"
        self.odd_folder = root / "odd-images"  # only a FIFO and a link to a device, named as images
        self.odd_folder.mkdir()
        os.mkfifo(self.odd_folder / "a.jpg")
        (self.odd_folder / "b.png").symlink_to("/dev/urandom")
        self.sock_path = root / "sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.sock_path))
        self.folder = root / "a-folder"
        self.folder.mkdir()
        (root / "broken.yaml").write_text("name: [unclosed\n")
        (root / "list.yaml").write_text("- 1\n- 2\n")
        (root / "keys.yaml").write_text("true: 1\nmodel: {null: 2}\n")
        (root / "binary.yaml").write_bytes(b"\x7fELF\x00\x01\x02")
        for i in range(40):  # a chain longer than any composition of fragments
            nxt = f"extends: [chain{i + 1}.yaml]\n" if i < 39 else "name: end-of-chain\n"
            (root / f"chain{i}.yaml").write_text(nxt)
        for i in range(8):  # each file extends the next three times: 3^8 reads without a bound
            body = (
                f"extends: [fan{i + 1}.yaml, fan{i + 1}.yaml, fan{i + 1}.yaml]\n" if i < 7 else "fuse: {}\n"
            )
            (root / f"fan{i}.yaml").write_text(body)

    def close(self) -> None:
        self._sock.close()

    def data_paths(self) -> list[str]:
        return [
            str(self.fifo),
            "/dev/urandom",
            "/dev/zero",
            "/dev/null",
            str(self.sock_path),
            str(self.pipe_jpg),
            str(self.odd_folder),
        ]

    def extends_entries(self, own: str) -> list[Any]:
        r = self.root
        return [
            str(self.fifo),
            "/dev/urandom",
            "/dev/zero",
            str(self.sock_path),
            str(self.folder),
            "",
            "no-such-fragment.yaml",
            own,  # itself: a cycle
            "a\x00b.yaml",
            "x" * 5000,
            "/".join(["y" * 255] * 20),
            str(r / "broken.yaml"),
            str(r / "list.yaml"),
            str(r / "keys.yaml"),
            str(r / "binary.yaml"),
            str(r / "chain0.yaml"),
            str(r / "fan0.yaml"),
            1,
            {"a": 1},
            [["nested.yaml"]],
        ]


def _mutate(rng: random.Random, kind: str, data: dict, special: Special, own: str) -> str:
    """One mutated recipe as YAML text (placeholders let the text hold what a dump cannot write cheaply)."""
    raw: dict[str, str] = {}
    if kind == "delete_key":
        paths = _paths(data)
        for path in rng.sample(paths, min(len(paths), rng.randint(1, 3))):
            with contextlib.suppress(KeyError, IndexError, TypeError):
                parent = _get(data, path[:-1])
                del parent[path[-1]]
    elif kind == "type_swap":
        paths = _paths(data)
        for path in rng.sample(paths, min(len(paths), rng.randint(1, 2))):
            with contextlib.suppress(KeyError, IndexError, TypeError):
                old = _get(data, path)
                choices = [v for v in SWAPS if type(v) is not type(old)]
                _get(data, path[:-1])[path[-1]] = rng.choice(choices)
    elif kind == "non_text_key":
        where = rng.choice(_mappings(data))
        _get(data, where)[rng.choice(NON_TEXT_KEYS)] = rng.choice([1, "x", None, [1], {"a": 1}])
    elif kind == "deep_nesting":
        depth = rng.choice([65, 100, 1000, 5000])
        deep = "[" * depth + "]" * depth if rng.random() < 0.5 else "{a: " * depth + "1" + "}" * depth
        raw["__DEEP__"] = deep
        _put(data, rng.choice(["model.config", "validate.gates", "name", "compile.threads", "x"]), "__DEEP__")
    elif kind == "huge_string":
        size = rng.choice([300_000, 2_000_000]) if rng.random() < 0.9 else 30_000_000
        raw["__HUGE__"] = "s" * size
        _put(data, rng.choice(["name", "model.id", "validate.data", "model.config.x", "comment"]), "__HUGE__")
    elif kind == "huge_list":
        # under the size bound but over the node bound (parsed up to the bound: about 1 s), or a million
        items = 12_000 if rng.random() < 0.08 else rng.choice([300_000, 1_000_000])
        raw["__LIST__"] = "[" + "0, " * items + "0]"
        _put(
            data, rng.choice(["model.labels", "benchmark.batch_sizes", "model.input.shape", "x"]), "__LIST__"
        )
    elif kind == "bad_extends":
        bad = rng.choice(special.extends_entries(own))
        if isinstance(bad, str):  # one bad entry among the recipe's own fragments
            ext = data.get("extends") or []
            ext = [ext] if isinstance(ext, str) else list(ext)
            ext.insert(rng.randint(0, len(ext)), bad)
            data["extends"] = ext
        else:
            data["extends"] = bad
    elif kind == "special_path":
        target = rng.choice(
            [
                "validate.data",
                "quantize.calibration.data",
                "quantize.check.data",
                "validate.labels",
                "model.weights",
            ]
        )
        value = rng.choice(special.data_paths())
        if target == "model.weights" and value == str(special.odd_folder):
            value = str(special.fifo)  # a folder is the model source's to refuse, at load
        if target == "quantize.calibration.data" and rng.random() < 0.3:
            value = str(special.pipe_npy)  # a tensor file that is a FIFO
        _put(data, target, value)
        if target.startswith("quantize."):
            _put(data, "quantize.precision", "int8")  # the data of an fp32 'quantize' is never read
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the test's own writing: libyaml where present
    text = yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=2**20)
    for placeholder, value in raw.items():
        text = text.replace(placeholder, value)
    return text


def _cases(special: Special) -> Iterator[tuple[int, str, str, Path, str]]:
    """(index, kind, expectation, base recipe, text), the same every run."""
    rng = random.Random(SEED)
    bases = {p: yaml.safe_load(p.read_text()) for p in SHIPPED}
    i = 0
    for kind, (count, expect) in KINDS.items():
        for n in range(count):
            base = SHIPPED[n % len(SHIPPED)]
            own = f"fuzz-{i}.yaml"
            text = _mutate(rng, kind, copy.deepcopy(bases[base]), special, own)
            yield i, kind, expect, base, text
            i += 1


def _check(path: Path) -> tuple[str, str]:
    """What `vopt check` runs (load, plan-time input checks, plan), in process: ('ok', '') or ('error',
    message). Any other exception fails the test."""
    from vopt.errors import RecipeError
    from vopt.pipeline.plan import make_plan
    from vopt.pipeline.preflight import check_inputs
    from vopt.recipe.resolve import load_recipe, located

    try:
        loaded = load_recipe(path)
        check_inputs(loaded)
        with located(loaded.raw):
            make_plan(loaded.recipe)
    except RecipeError as exc:
        head = exc.message
        located = LOCATED.search(head) or (re.match(r"\d+ problems? ", head) and exc.lines)
        assert located, f"no file:line: {head}"
        for line in exc.lines:
            assert LOCATED.search(line), f"no file:line: {head} / {line}"
        return "error", "\n".join([head, *exc.lines])
    return "ok", ""


@pytest.fixture
def fuzz_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Special]]:
    """A copy of recipes/ (so `extends:` resolves) and the special files, with the working directory there."""
    tree = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes", tree)
    special = Special(tmp_path / "special")
    # efficientnet recipes read ${env:VOPT_IMAGENET}: real images, so those recipes can plan
    monkeypatch.setenv("VOPT_IMAGENET", str(SAMPLES))
    monkeypatch.chdir(tmp_path)
    try:
        yield tree, special
    finally:
        special.close()


@pytest.mark.slow  # 1,070 recipes checked: 49 s in `make test-fast` under load 8 (7 Dec 2026)
def test_mutated_shipped_recipes_plan_or_fail_with_a_line_in_bounded_time(fuzz_tree, cli):
    tree, special = fuzz_tree
    # unmutated, untimed: the imports of a first check (pydantic models, plugins) are not the loader's time
    assert _check(tree / "examples" / "demo.yaml") == ("ok", "")
    outcomes: Counter[tuple[str, str]] = Counter()
    slowest = (0.0, "")
    via_cli = 0
    for i, kind, expect, base, text in _cases(special):
        rel = base.relative_to(REPO / "recipes")
        path = tree / rel.parent / f"fuzz-{i}.yaml"
        path.write_text(text)
        case = f"case {i} ({kind} of {rel})"
        start = time.monotonic()
        try:
            with time_limit(CASE_SECONDS):
                outcome, message = _check(path)
        except Hung:
            pytest.fail(f"{case}: `vopt check` still running after {CASE_SECONDS} s")
        except AssertionError as exc:
            pytest.fail(f"{case}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the point: nothing but a RecipeError may come out
            pytest.fail(f"{case}: {type(exc).__name__}: {exc}")
        took = time.monotonic() - start
        assert took < CASE_SECONDS, f"{case}: took {took:.1f} s"
        slowest = max(slowest, (took, case))
        if expect == "error":
            assert outcome == "error", f"{case}: always-wrong recipe passed `vopt check`:\n{text[:400]}"
        outcomes[(kind, outcome)] += 1
        if i % 40 == 0:  # the same through the CLI: exit 2, `error` and located lines, no traceback
            res = cli("check", str(path))
            assert res.exit_code == (0 if outcome == "ok" else 2), f"{case}: {res.output[-2000:]}"
            assert "Traceback" not in res.output and "internal error" not in res.output, res.output
            via_cli += 1
        path.unlink()
    total = sum(outcomes.values())
    assert total >= 1000
    # the 'any' mutations are not all errors: the generator keeps many recipes valid
    assert outcomes[("delete_key", "ok")] >= 50 and outcomes[("type_swap", "error")] >= 50, outcomes
    assert via_cli >= 25
    print(
        f"\n{total} recipes, {via_cli} through the CLI; slowest {slowest[0]:.2f} s ({slowest[1]}); {outcomes}"
    )
