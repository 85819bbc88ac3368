"""The docs' example outputs are real: every ```text block in README.md and docs/*.md that starts with
`$ vopt ...` is run, command by command, in a fresh directory with its own cache (through a shell, as a user
types it), and the output must match the block line for line once the volatile figures are masked on both
sides: times, sizes, measured numbers (any number with a decimal point), hashes, dates and the directories
of absolute paths. Plain integers stay: a count of nodes, images or layers that changes is a doc to fix.

Each block needs a case below: the files its commands read, what must be built first, and, only where the doc
itself says so, a variant of the command (`999...9` for a 5,000-digit number). A new example without a case,
or a case whose example is gone, fails the test. Builds of real models are `slow`; the browser one is
`browser` too. To see what a block prints now: VOPT_DOCS_SHOW=1 pytest -k <id> -s."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
WIDTH = 100  # COLUMNS for every run: tables wider than this print one record per line


@dataclass
class Example:
    doc: str  # path relative to the repo
    line: int  # of the opening fence
    commands: list[tuple[str, list[str]]]  # ($ command, the lines the doc shows after it)
    index: int  # the how-manieth example of its doc: a test id that stays when the doc's lines move

    @property
    def key(self) -> tuple[str, str]:
        return self.doc, self.commands[0][0]

    @property
    def id(self) -> str:
        return f"{Path(self.doc).stem}-{self.index}"


def examples() -> list[Example]:
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() != "```text":
                i += 1
                continue
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if body and body[0].startswith("$ vopt "):
                commands: list[tuple[str, list[str]]] = []
                for text in body:
                    if text.startswith("$ "):
                        commands.append((text[2:], []))
                    else:
                        commands[-1][1].append(text)
                doc = str(path.relative_to(REPO))
                index = 1 + sum(ex.doc == doc for ex in found)
                found.append(Example(doc, start, commands, index))
            i += 1
    return found


@dataclass
class Case:
    """How to run one doc example."""

    files: dict[str, str | bytes] = field(default_factory=dict)  # written into the run directory first
    setup: Callable[[Path], None] | None = None  # makes files that need code (ONNX models)
    prepare: list[str] = field(default_factory=list)  # commands run first (their output is not compared)
    subs: dict[str, str] = field(default_factory=dict)  # command text -> what runs, where the doc abbreviates
    optional: str | None = None  # lines that appear or not with the machine's state (a busy machine)
    rows: str | None = None  # rows of a table ranked by measured times: compared as "some rows"
    masks: list[tuple[str, str]] = field(default_factory=list)  # more volatile tokens (machine-dependent)
    vopt: str | None = None  # a wrapper run as `vopt` (a doc's plugin registered first)
    marks: tuple[pytest.MarkDecorator, ...] = ()


BUSY = r"the machine is busy \(load average"  # said by the benchmark step, and again as a note when cached
TINY_RESNET = {
    "source": "hf",
    "id": "microsoft/resnet-18",
    "family": "resnet",
    "weights": "random",
    "config": {"layer_type": "basic", "depths": [1, 1], "hidden_sizes": [16, 32], "embedding_size": 16},
    "input": {"shape": [1, 3, 64, 64]},
}


def _typo_recipe() -> str:
    return textwrap.dedent(
        """\
        name: typo
        model: {source: hf, id: microsoft/resnet-18, family: resnet, weights: random}
        compile: {target: cpu}
        quantize:
          calibraton: {samples: 8}
        """
    )


def _pair(root: Path) -> None:
    """docs/adding-a-component.md's two ONNX files (as tests/integration/test_components.py makes them)."""
    import torch

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
    )  # fmt: skip
    decoder = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10),
    )  # fmt: skip
    x = torch.randn(1, 3, 64, 64)
    for module, example, name, io in (
        (encoder, x, "enc.onnx", ("pixel_values", "features")),
        (decoder, encoder(x), "dec.onnx", ("features", "logits")),
    ):
        torch.onnx.export(
            module.eval(), (example,), str(root / name), input_names=[io[0]], output_names=[io[1]],
            opset_version=17, dynamo=False,
        )  # fmt: skip
    doc = (REPO / "docs" / "adding-a-component.md").read_text()
    (root / "pair.yaml").write_text(re.search(r"```yaml\n(# pair\.yaml\n.*?)```", doc, re.S).group(1))


def _inverse(root: Path) -> None:
    from tests.integration.test_target_diagnose import SHAPE, _inverse_model

    _inverse_model(root / "inverse.onnx")
    recipe = {
        "name": "inverse-openvino",
        "model": {"source": "onnx", "path": "inverse.onnx", "input": {"shape": SHAPE}},
        "compile": {"target": "openvino"},
        "validate": {"samples": 2, "default_gates": False},
    }
    (root / "inverse-openvino.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def _toy_scheme_vopt() -> str:
    """docs/adding-a-scheme.md's example scheme, put in the table its entry point fills, then vopt."""
    return textwrap.dedent(
        f"""\
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.contract.test_contract_schemes import TOY
        open("toy_scheme.py", "w").write(TOY)
        sys.path.insert(0, ".")
        from vopt.registry import SCHEMES
        SCHEMES["ort-dynamic"] = "toy_scheme:DynamicInt8Scheme"
        from vopt.cli.app import main
        sys.argv[0] = "vopt"
        main()
        """
    )


# What a profile names and counts depends on the CPU's instruction sets (kernels, fused ops, precisions), and
# its tables are ranked by measured time: they are compared as "some rows".
PROFILE_ROWS = r"^\S+ # # \d+ \S+$|^node: "
PROFILE_MASKS = [
    (r"\b(jit|brg\w*|ref|gemm|acl)_\w+", "<kernel>"),
    (r"inference precision \w+", "inference precision <p>"),
    (r"\b\d+ ops\b", "# ops"),
    (r"^precision mix by time: .*", "precision mix by time: <mix>"),
    (r"^devices: (\S+) \d+$", r"devices: \1 #"),
]
SLOW = (pytest.mark.slow,)

CASES: dict[tuple[str, str], Case] = {
    ("README.md", "vopt build recipes/examples/demo.yaml"): Case(optional=BUSY, marks=SLOW),
    ("README.md", "vopt build typo.yaml"): Case(files={"typo.yaml": _typo_recipe()}),
    ("docs/adding-a-component.md", "vopt build pair.yaml"): Case(setup=_pair, marks=SLOW),
    (
        "docs/ci.md",
        "vopt matrix recipes/resnet-openvino.yaml recipes/vit-cuda.yaml --format github",
    ): Case(),
    ("docs/deploy.md", "vopt plan lvl.yaml --set level=O0 | tail -5"): Case(
        files={
            "lvl.yaml": yaml.safe_dump(
                {"name": "lvl", "model": TINY_RESNET, "compile": {"target": "cpu"}, "level": "O2"},
                sort_keys=False,
            )
        }
    ),
    ("docs/deploy.md", "vopt profile build/prof-ov --top 4"): Case(
        files={
            "prof-ov.yaml": yaml.safe_dump(
                {
                    "name": "prof-ov",
                    "model": TINY_RESNET,
                    "quantize": {"precision": "int8", "calibration": {"samples": 8}, "check": {"samples": 4}},
                    "compile": {"target": "openvino", "precision": "int8"},
                    "validate": {"samples": 4, "default_gates": False},
                },
                sort_keys=False,
            )
        },
        prepare=["vopt build prof-ov.yaml --out build"],
        rows=PROFILE_ROWS,
        masks=PROFILE_MASKS,
        marks=SLOW,
    ),
    ("docs/deploy.md", "vopt profile build/smoke/resnet-webgpu --top 4"): Case(
        prepare=["vopt build recipes/resnet-webgpu.yaml --profile smoke --out build/smoke"],
        rows=PROFILE_ROWS,
        masks=PROFILE_MASKS,
        marks=(pytest.mark.slow, pytest.mark.browser),
    ),
    ("docs/deploy.md", "vopt estimate recipes/examples/demo.yaml --batch-sizes 1,8,32 --memory 512MB"): Case(
        marks=SLOW
    ),
    (
        "docs/quantization.md",
        "vopt check bad.yaml          # compile: {target: openvino}, and on line 9: options: {preset: fast}",
    ): Case(
        files={
            "bad.yaml": textwrap.dedent(
                """\
                name: bad
                model:
                  source: hf
                  id: microsoft/resnet-18
                  family: resnet
                compile: {target: openvino}
                quantize:
                  precision: int8
                  options: {preset: fast}
                """
            )
        }
    ),
    ("docs/adding-a-scheme.md", "vopt check recipe.yaml"): Case(
        files={
            "recipe.yaml": textwrap.dedent(
                """\
                name: toy
                model:
                  source: hf
                  id: microsoft/resnet-18
                  family: resnet
                compile: {target: cpu}
                quantize:
                  scheme: ort-dynamic
                  options: {op_type: [MatMul]}
                """
            )
        },
        vopt=_toy_scheme_vopt(),
    ),
    ("docs/reliability-input.md", "vopt check bad.yaml"): Case(
        files={
            "bad.yaml": b"\xffname: bad\n",
            "u16.yaml": "name: u16\n".encode("utf-16"),
            "nul.yaml": b"name: nul\x00\n",
            "big.yaml": "name: big\nmodel:\n  source: hf\n  id: microsoft/resnet-18\n  family: resnet\n"
            "compile: {target: cpu}\nvalidate:\n  gates: {}\n  samples: " + "9" * 5000 + "\n",
            "base.yaml": "name: base\nmodel: {source: hf, id: microsoft/resnet-18, family: resnet}\n",
        },
        subs={"validate.samples=999...9": "validate.samples=" + "9" * 5000},
    ),
    ("docs/reliability-input.md", "vopt build inverse-openvino.yaml --out out"): Case(
        setup=_inverse, marks=SLOW
    ),
    # The tiny random-weight pipeline (about 15 s quiet for sd-cpu). int8 on a CPU with VNNI may pay: the
    # "did not pay" warning and its mark come and go with the CPU.
    ("docs/diffusion.md", "vopt build recipes/sd-cpu.yaml"): Case(marks=SLOW),
    ("docs/diffusion.md", "vopt build recipes/sd-openvino.yaml"): Case(
        prepare=["vopt build recipes/sd-cpu.yaml"], marks=SLOW
    ),
    ("docs/diffusion.md", "vopt build recipes/sd-cpu.yaml --set quantize.precision=int8"): Case(
        optional=r"^warning: INT8 did not pay", masks=[(r" \(did NOT pay\)", "")], marks=SLOW
    ),
}

# Examples whose case belongs to a change still in progress: skipped with the reason (pytest -rs shows it),
# never silently; an entry whose example is gone fails like a stale case.
PENDING: dict[tuple[str, str], str] = {}

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_VOLATILE = [
    (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?", "<date>"),
    (r"(?<![\w.~-])/(?:[^\s/()'\"`,:]+/)+", "<dir>/"),  # the directory of an absolute path
    (r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", "<hash>"),
    (r"\b\d+m\d\ds\b", "#"),  # 3m12s
    (r"\d+\.\d+(e[+-]?\d+)?|\d+e[+-]?\d+", "#"),  # measured numbers
    (r"\b\d+(?=\s?(ms|s|MB|GB|kB|B|x|img/s)\b)", "#"),  # times, sizes, ratios in whole units
    # the verdict on a measured speed-up: whether its interval excludes 1 depends on the machine's load
    (r" \((?:inconclusive: 95% CI [^)]*|did NOT pay)\)", ""),
]


# A long step's progress lines in a log (at most one every 15 s: "  export     running, 16 s", "  validate
# validate on X: 3/9 (33%), ...", "  quantize   quantize (nncf, int8): done in 42 s"): how many appear depends
# on the machine's speed, so a doc may show them or not.
PROGRESS = re.compile(
    r"^\w+ (.+: )?(running, #?|\d+/\d+ \(\d+%\), |(\d+/)?\d+ done in |done in |\d+ done, running)"
)


# Said when a measured int8 speed-up's interval falls below 1: on the tiny models the machine's load decides.
LOAD_DEPENDENT = re.compile(r"^warning: INT8 did not pay")


def normalise(text: str, case: Case) -> list[str]:
    out: list[str] = []
    for raw in _ANSI.sub("", text).splitlines():
        line = raw
        for pattern, repl in _VOLATILE + case.masks:
            line = re.sub(pattern, repl, line)
        line = re.sub(r"\s+", " ", line).strip()
        if not line or PROGRESS.search(line) or LOAD_DEPENDENT.search(line):
            continue
        if case.optional and re.search(case.optional, line):
            continue
        if case.rows and re.search(case.rows, line):
            if out and out[-1] == "<rows>":
                continue
            line = "<rows>"
        out.append(line)
    return out


def _env(tmp: Path, bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VOPT_DEBUG"}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        VOPT_CACHE_DIR=str(tmp / ".cache"),
        VOPT_PROGRESS="0",  # a terminal's live bars leave nothing behind; a log's timed lines would differ
        COLUMNS=str(WIDTH),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def _run(command: str, cwd: Path, env: dict[str, str]) -> tuple[str, int]:
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order it was written, as a terminal shows it
        text=True,
        timeout=900,
    )
    return proc.stdout, proc.returncode


ALL = examples()


def _params() -> list:
    params = []
    for ex in ALL:
        case = CASES.get(ex.key)
        params.append(pytest.param(ex, id=ex.id, marks=case.marks if case else ()))
    return params


def test_every_case_has_its_example():
    keys = {ex.key for ex in ALL}
    pending = [k for k in PENDING if (REPO / k[0]).exists()]  # a doc not yet in the tree has nothing to run
    assert not [k for k in [*CASES, *pending] if k not in keys], "a case whose example is gone: remove it"
    assert not set(CASES) & set(PENDING)


@pytest.mark.parametrize("example", _params())
def test_doc_example_matches_a_real_run(example: Example, tmp_path: Path):
    if example.key in PENDING:
        pytest.skip(f"{example.doc}:{example.line}: {PENDING[example.key]}")
    case = CASES.get(example.key)
    assert case is not None, f"{example.doc}:{example.line}: `$ {example.key[1]}` needs a case in CASES"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipes").symlink_to(REPO / "recipes")
    (run_dir / "vopt" / "data").mkdir(parents=True)
    (run_dir / "vopt" / "data" / "samples").symlink_to(REPO / "vopt" / "data" / "samples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if case.vopt is not None:
        wrapper = bin_dir / "vopt"
        wrapper.write_text(f"#!{sys.executable}\n{case.vopt}")
        wrapper.chmod(0o755)
    for name, content in case.files.items():
        data = content.encode() if isinstance(content, str) else content
        (run_dir / name).write_bytes(data)
    if case.setup is not None:
        case.setup(run_dir)
    env = _env(tmp_path, bin_dir)
    for command in case.prepare:
        text, code = _run(command, run_dir, env)
        assert code == 0, f"preparing `{command}` failed:\n{text}"
    show = os.environ.get("VOPT_DOCS_SHOW") == "1"
    code = 0
    problems = []
    for command, expected in example.commands:
        if command.startswith("echo $?"):
            text = f"{code}\n"
        else:
            ran = command
            for short, full in case.subs.items():
                ran = ran.replace(short, full)
            text, code = _run(ran, run_dir, env)
        if show:
            print(f"$ {command}\n{text}", end="")
        want, got = normalise("\n".join(expected), case), normalise(text, case)
        if want != got:
            problems.append(_diff(command, want, got))
    assert not problems, f"{example.doc}:{example.line} no longer matches a real run:\n" + "\n".join(problems)


def _diff(command: str, want: list[str], got: list[str]) -> str:
    import difflib

    lines = difflib.unified_diff(want, got, "the doc", "a real run", lineterm="", n=1)
    return f"$ {command}\n" + "\n".join(lines)
