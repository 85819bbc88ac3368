"""The recipe library under recipes/: composed recipes (not the fragments), with family, platform, precision
and whether the target can build and run here. `vopt recipes` prints it; docs/recipes.md is generated from
it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vopt.cli.fragments import FRAGMENT_DIRS

# Pairs the seed guides mark "Limited", and the precise reason a build stops (docs/recipes.md states them).
# Measured with `vopt build --profile smoke` (tiny configs) on onnxruntime-web 1.30 / coremltools 9.
LIMITED: dict[str, str] = {
    "detr-webgpu": "builds. 4 nodes (`And` x2, `ConstantOfShape` x2, from the padding mask of DETR's "
    "positional embedding) are not in the WebGPU EP's op table, so onnxruntime-web runs them on wasm and "
    "splits the graph; the build warns with the op list (set `compile.fail_on_fallback: true` to make it "
    "an error). "
    "fp16 on WebGPU is verified only where the adapter has shader-f16 (not SwiftShader).",
    "detr-webnn": "builds: with static shapes every node is in the WebNN EP's table. Linux Chromium has no "
    "WebNN context, so the artifact is executed on wasm with the same static shapes, never on WebNN itself.",
    "detr-mps": "fails at compile: coremltools 9 has no converter for `new_ones` (DETR's positional "
    'embedding), "Unsupported fx node new_ones"; `vopt build` exits 1 and names the op.',
    "yolo-qualcomm": "fails at the quantize check on the HTP simulator: onnxruntime-qnn 2.7 cannot finalize "
    "YOLO11n's graph (QNN_COMMON_ERROR_MEM_ALLOC), at 64 and 320 px; bisected by layer, 8-bit activations "
    "fail from the neck's first upsample-and-concat (model.12 Concat), 16-bit from the C3k2 block after it "
    "(model.13). The network-on-HTP / NMS-on-CPU placement gate (compile.allow_cpu_nodes) and the 16-bit "
    "decode are in place for a device or a newer SDK.",
}
# Limited pairs that do not build: `make smoke` leaves them out.
FAILS = ("detr-mps", "yolo-qualcomm")


@dataclass
class Entry:
    file: str
    name: str
    family: str
    platform: str
    target: str
    precision: str
    runtime: str  # runs here | proxy | builds only | unavailable
    reason: str
    ok: bool = True
    error: str | None = None
    description: str = ""
    limited: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def recipe_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.yaml") if p.relative_to(root).parts[0] not in FRAGMENT_DIRS)


def runtime_here(target) -> tuple[str, str]:
    """(status, why): `runs here` on the real runtime, `proxy` (a simulator, ORT CPU or wasm stands in),
    `builds only` (converted and checked, not executed), or `unavailable` (cannot even build)."""
    can_build, why = target.available()
    if not can_build:
        return "unavailable", why
    has_device, where = target.hardware()
    if has_device:
        proxy = any(w in where.lower() for w in ("simulator", "wasm", "swiftshader"))
        return ("proxy" if proxy else "runs here"), where
    return ("proxy" if "checked on ort cpu" in where.lower() else "builds only"), where


def scan(root: Path) -> list[Entry]:
    from vopt.errors import RecipeError
    from vopt.recipe.resolve import load_recipe
    from vopt.registry import get_target

    targets: dict[str, tuple[str, str]] = {}
    rows: list[Entry] = []
    for path in recipe_files(root):
        try:
            loaded = load_recipe(path)
        except RecipeError as exc:
            rows.append(Entry(str(path), "-", "-", "-", "-", "-", "-", "", ok=False, error=exc.message))
            continue
        r = loaded.recipe
        target = get_target(r.compile.target)
        if r.compile.target not in targets:
            targets[r.compile.target] = runtime_here(target)
        status, why = targets[r.compile.target]
        rows.append(
            Entry(
                file=str(path),
                name=r.name,
                family=r.model.family or "auto",
                platform=_platform(loaded),
                target=r.compile.target,
                precision=precision_of(r, target),
                runtime=status,
                reason=why,
                description=_first_comment(path),
                limited=LIMITED.get(r.name),
            )
        )
    return rows


def buildable(rows: list[Entry]) -> list[Entry]:
    """What `make smoke` builds: the target builds here and its artifact runs here (or on its stand-in)."""
    return [r for r in rows if r.ok and r.runtime in ("runs here", "proxy") and r.name not in FAILS]


def precision_of(recipe, target) -> str:
    q = recipe.quantize
    if q is not None and q.precision not in (None, "fp32"):
        return q.precision
    if q is not None and q.precision is None:
        return "int8"
    value = target.precision(recipe.compile)
    return "+".join(value) if isinstance(value, list) else str(value)


def _platform(loaded) -> str:
    """The platform fragment the recipe extends (recipes/targets/<platform>.yaml), else the target's name. A
    base fragment that one platform fragment builds on is that platform: a recipe on targets/qnn.yaml is on
    `qualcomm` like those on targets/qualcomm.yaml (which extends qnn.yaml), so the list never names one
    platform two ways; `-int8` variants are their platform."""
    frags = [f for f in loaded.raw.files[:-1] if f.parent.name == "targets"]
    if not frags:
        return loaded.recipe.compile.target
    frag = frags[-1]
    above = [p for p in sorted(frag.parent.glob("*.yaml")) if frag.name in _extends(p)]
    if len(above) == 1:
        frag = above[0]
    return frag.stem.removesuffix("-int8")


def _extends(fragment: Path) -> list[str]:
    import yaml

    data = yaml.safe_load(fragment.read_text()) or {}
    found = data.get("extends") or []
    return [found] if isinstance(found, str) else list(found)


def _first_comment(path: Path) -> str:
    """The recipe's header comment, joined into one line."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)
