"""Property-based fuzzing of recipe input: generated recipes, raw bytes and `--set` values.

Every case must end in a successful check (exit 0) or a clean recipe error (exit 2) whose problem lines each
name a file:line or the `--set` flag: never a traceback, an internal error or another exit code. Runs `vopt
check` in process (load, validate, plan, plan-time input checks): no builds. Derandomized, so CI sees the same
cases every run; about 1,200 cases in all."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

BASE = {
    "name": "fuzz",
    "model": {
        "source": "hf",
        "id": "tiny-resnet",
        "family": "resnet",
        "weights": "random",
        "config": {"num_channels": 3, "embedding_size": 8, "hidden_sizes": [8], "depths": [1]},
        "input": {"shape": [1, 3, 32, 32]},
    },
    "compile": {"target": "cpu"},
}

# Key paths the fuzzer sets: every numeric field with a range, plus strings, paths and sections.
PATHS = [
    "model.input.shape",
    "model.input.shape.0",
    "model.input.dynamic",
    "model.input.dynamic.batch",
    "model.seed",
    "model.source",
    "model.family",
    "model.task",
    "model.weights",
    "name",
    "preprocess.resize",
    "preprocess.size",
    "preprocess.mean",
    "preprocess.std",
    "preprocess.scale",
    "export.opset",
    "export.dynamo",
    "export.parity_samples",
    "validate.samples",
    "validate.batch",
    "validate.seed",
    "validate.data",
    "validate.gates",
    "validate.score_threshold",
    "quantize.precision",
    "quantize.calibration.samples",
    "quantize.calibration.batch",
    "quantize.calibration.data",
    "quantize.calibration.percentile",
    "quantize.check.samples",
    "quantize.check.data",
    "quantize.check.rounds",
    "quantize.gates",
    "quantize.max_float_fraction",
    "quantize.fallback_step",
    "quantize.require_speedup",
    "benchmark.seconds",
    "benchmark.iterations",
    "benchmark.warmup",
    "benchmark.threads",
    "benchmark.batch_sizes",
    "compile.target",
    "compile.threads",
    "compile.precision",
    "extends",
]

scalars = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2, 7, 17, 20, 21, 23, 24, 100_000, 100_001, 10**12, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "/nonexistent/dir",
            ".",
            "~nosuchuser/x",
            "recipe.yaml",
            ">=0.9",
            "cpu",
            "gpu",
            "int8",
            "builtin:samples",
            "\x1b[31mred",
            "a\x00b",
            "x" * 300,
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
# YAML text that is not a dumped Python value: huge ints, tags, anchors, control characters.
yaml_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "9" * 4301,
            "-" + "9" * 5000,
            "[" + "9" * 4400 + "]",
            "!!binary AAAA",
            "!!python/object:os.system",
            "&a [*a]",
            "{a: 1, a: 2}",
            "[1, 2",
            ".nan",
            "-.inf",
            "0x10",
            "0o17",
            "1_000",
            "2001-12-14",
            "!!set {a, b}",
            "'\x07'",
            "[[[[[[[[[[]]]]]]]]]]",
            "{gates: {cosine: '>=x'}}",
        ]
    ),
)


def _dump(data) -> str:
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True)


LOCATED = re.compile(r"(^|\s)(\S+\.ya?ml:\d+: |--set )")


def _set(data: dict, dotted: str, value) -> dict:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return data


def _check_lines(message: str, lines: list[str]) -> None:
    """A recipe error: the head names the file (with a line, or a count of the problems listed under it) or
    the flag; every listed problem names its file:line or its `--set`."""
    assert (
        LOCATED.search(message) or (re.search(r"\d+ problems? ", message) and lines) or "--set" in message
    ), message
    for line in lines:
        assert LOCATED.search(line), (message, lines)


def _check(path: Path, *sets: str) -> str:
    """What `vopt check` does (load, validate, plan, plan-time input checks), in process and without the CLI
    runner, which costs more than the check itself. Returns 'ok' or 'error'; anything else fails the test."""
    from vopt.errors import RecipeError
    from vopt.pipeline.plan import make_plan
    from vopt.pipeline.preflight import check_inputs
    from vopt.recipe.resolve import load_recipe

    try:
        loaded = load_recipe(path, list(sets))
        check_inputs(loaded)  # as `vopt check` orders them: input problems carry the recipe line
        make_plan(loaded.recipe)
    except RecipeError as exc:
        where = "" if str(path.name) in exc.message or exc.message.startswith("--set") else f"{path.name}: "
        _check_lines(where + exc.message, exc.lines)
        return "error"
    return "ok"


def _check_cli(cli, path: Path, *sets: str) -> None:
    args = ["check", str(path)]
    for s in sets:
        args += ["--set", s]
    res = cli(*args)
    text = res.output
    assert res.exit_code in (0, 2), text
    assert "Traceback" not in text and "internal error" not in text and "\x1b" not in text, text
    if res.exit_code == 2:
        problems = [ln.strip() for ln in text.splitlines() if ln.strip()]
        assert problems[0].startswith("error "), text
        _check_lines(problems[0], problems[1:])


FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow  # many generated recipes, each checked: 5 to 10 s
@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=4))
def test_generated_recipes_check_cleanly(workdir, edits):
    data = copy.deepcopy(BASE)
    for dotted, value in edits:
        _set(data, dotted, value)
    path = workdir / "recipe.yaml"
    path.write_text(_dump(data))
    _check(path)


@settings(FUZZ, max_examples=300)
@given(dotted=st.sampled_from(PATHS), text=yaml_texts)
def test_raw_yaml_values_check_cleanly(workdir, dotted, text):
    """A value written into the YAML text as is (not dumped): YAML's own syntax and tags."""
    path = workdir / "recipe.yaml"
    body = _dump(BASE)
    parts = dotted.split(".")
    nested = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts[:-1]))
    path.write_text(body + nested + f"{'  ' * (len(parts) - 1)}{parts[-1]}: {text}\n")
    _check(path)


@settings(FUZZ, max_examples=300)
@given(cut=st.integers(min_value=0, max_value=400), junk=st.binary(min_size=1, max_size=6))
def test_bad_bytes_check_cleanly(workdir, cut, junk):
    body = _dump(BASE).encode()
    cut = min(cut, len(body))
    path = workdir / "recipe.yaml"
    path.write_bytes(body[:cut] + junk + body[cut:])
    _check(path)


@settings(FUZZ, max_examples=300)
@given(
    sets=st.lists(
        st.tuples(st.sampled_from([*PATHS, "", "a..b", "model.input.shape.9"]), yaml_texts),
        min_size=1,
        max_size=3,
    )
)
def test_set_values_check_cleanly(workdir, sets):
    path = workdir / "recipe.yaml"
    path.write_text(_dump(BASE))
    _check(path, *(f"{k}={v}" for k, v in sets))


@settings(FUZZ, max_examples=60)
@given(
    edits=st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3),
    sets=st.lists(st.tuples(st.sampled_from(PATHS), yaml_texts), max_size=2),
    junk=st.one_of(st.none(), st.binary(min_size=1, max_size=3)),
)
def test_the_cli_prints_clean_errors(cli, workdir, edits, sets, junk):
    """The same through `vopt check` itself: exit 0 or 2, no traceback, no terminal escapes."""
    data = copy.deepcopy(BASE)
    for dotted, value in edits:
        _set(data, dotted, value)
    path = workdir / "recipe.yaml"
    path.write_bytes(_dump(data).encode() + (junk or b""))
    _check_cli(cli, path, *(f"{k}={v}" for k, v in sets))


def test_the_fuzzers_reach_successful_plans(workdir):
    """The generators are not all errors: the base recipe and small valid edits plan."""
    path = workdir / "recipe.yaml"
    path.write_text(_dump(BASE))
    assert _check(path) == "ok"
    assert _check(path, "validate.samples=100000", "export.opset=20", "benchmark.threads=[1,2]") == "ok"
