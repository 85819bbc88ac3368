"""Train the YOLO11n test fixture: tests/fixtures/yolo/shapes-yolo11n.pt, on scripts/yolo_shapes.py's dataset.

Reproducible: the dataset is regenerated from its seed (and checked against ``--expect-sha256`` when given),
and Ultralytics trains with ``seed=0, deterministic=True``, ``workers=0``, one CPU thread. The held-out split
is never trained on and never used to pick the checkpoint (``best.pt`` is chosen on the val split); it is
scored once at the end by Ultralytics' own ``model.val`` at fp32. Needs the ``yolo`` extra (``make install``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_yolo.py --epochs 1 --n-train 200   # a quick try
    OMP_NUM_THREADS=1 nohup .venv/bin/python scripts/train_yolo.py > build/train_yolo.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yolo_shapes  # noqa: E402
from ultralytics_offline import import_ultralytics, unused_torchvision_imports_pass  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "yolo" / "shapes-yolo11n.pt"
# yolo_shapes.tree_sha256 of the default dataset (seed 0, 1500/200/100 images), pinned numpy and Pillow.
DEFAULT_SHA256 = "d7d5e2d5ffaad12dabbefceaa479ffde5f596d0b735cac3d3fb3d5ae94e970da"


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")


def heldout_metrics(weights: Path, data_yaml: Path, imgsz: int) -> dict:
    """Ultralytics' own ``model.val`` on the held-out split (``test:`` in the data file), fp32, batch 16."""
    from ultralytics import YOLO

    model = YOLO(str(weights))
    with unused_torchvision_imports_pass():
        m = model.val(
            data=str(data_yaml),
            split="test",
            imgsz=imgsz,
            batch=16,
            half=False,
            device="cpu",
            workers=0,
            plots=False,
            project=str(REPO / "build" / "yolo-train"),
            name="heldout-val",
            exist_ok=True,
        )
    per_class = {model.names[int(c)]: round(float(m.box.maps[int(c)]), 4) for c in range(len(model.names))}
    return {
        "mAP50-95": round(float(m.box.map), 4),
        "mAP50": round(float(m.box.map50), 4),
        "precision": round(float(m.box.mp), 4),
        "recall": round(float(m.box.mr), 4),
        "mAP50-95 per class": per_class,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=REPO / "datasets" / "yolo-shapes")
    ap.add_argument("--n-train", type=int, default=yolo_shapes.DEFAULT_N["train"])
    ap.add_argument("--n-val", type=int, default=yolo_shapes.DEFAULT_N["val"])
    ap.add_argument("--n-heldout", type=int, default=yolo_shapes.DEFAULT_N["heldout"])
    ap.add_argument("--seed", type=int, default=0, help="dataset seed (training always uses seed=0)")
    ap.add_argument(
        "--expect-sha256", help="fail unless the regenerated dataset has this yolo_shapes.tree_sha256"
    )
    ap.add_argument("--reuse-data", action="store_true", help="skip regenerating the dataset")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--close-mosaic", type=int, default=3, help="last epochs without mosaic")
    ap.add_argument("--imgsz", type=int, default=320)
    # One optimizer step per batch of 8 (Ultralytics accumulates to nbs=64 by default: 4x fewer steps, which a
    # one-core budget of about 2,250 batches cannot spare).
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=FIXTURE, help="where the stripped checkpoint goes")
    ap.add_argument("--run-dir", type=Path, default=REPO / "build" / "yolo-train")
    args = ap.parse_args()

    torch.set_num_threads(1)
    t0 = time.time()
    root = args.data_root
    if not args.reuse_data:
        if root.exists():
            shutil.rmtree(root)
        for split, n in (("train", args.n_train), ("val", args.n_val), ("heldout", args.n_heldout)):
            s = yolo_shapes.make_split(root, split, n, args.seed)
            print(f"{split}: {n} images, {s.num_objects} objects", flush=True)
    sha = yolo_shapes.tree_sha256(root)
    print(f"dataset sha256 {sha} ({time.time() - t0:.0f} s)", flush=True)
    if args.expect_sha256 and sha != args.expect_sha256:
        raise SystemExit(f"dataset sha256 {sha} != expected {args.expect_sha256}")
    defaults = (args.n_train, args.n_val, args.n_heldout) == tuple(yolo_shapes.DEFAULT_N.values())
    if defaults and args.seed == 0 and sha != DEFAULT_SHA256:
        print(f"warning: not the fixture dataset ({DEFAULT_SHA256}): other numpy or Pillow?", flush=True)
    data_yaml = yolo_shapes.write_data_yaml(root)

    import_ultralytics()
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import strip_optimizer

    nc = len(yolo_shapes.CLASSES)
    model = YOLO("yolo11n.yaml")  # random init; nc comes from the data file
    t1 = time.time()
    with unused_torchvision_imports_pass():
        model.train(
            data=str(data_yaml),
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            workers=0,
            nbs=args.batch,
            warmup_epochs=1,
            seed=0,
            deterministic=True,
            device="cpu",
            close_mosaic=args.close_mosaic,
            plots=False,
            project=str(args.run_dir),
            name="shapes-yolo11n",
            exist_ok=True,
            pretrained=False,
            amp=False,
        )
    train_s = time.time() - t1
    best = args.run_dir / "shapes-yolo11n" / "weights" / "best.pt"

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rel_data = os.path.relpath(data_yaml, REPO)
    ckpt = strip_optimizer(best, s=str(args.out), updates={"date": None})  # fp16 weights, no optimizer or EMA
    ckpt["train_args"]["data"] = rel_data  # no absolute path of this machine in the fixture
    ckpt["train_args"]["project"] = None
    torch.save(ckpt, args.out)
    assert ckpt["model"].yaml["nc"] == nc, ckpt["model"].yaml

    metrics = heldout_metrics(args.out, data_yaml, args.imgsz)
    summary = {
        "fixture": os.path.relpath(args.out, REPO),
        "bytes": args.out.stat().st_size,
        "dataset_sha256": sha,
        "dataset": {"train": args.n_train, "val": args.n_val, "heldout": args.n_heldout, "seed": args.seed},
        "classes": list(yolo_shapes.CLASSES),
        "epochs": args.epochs,
        "train_seconds": round(train_s),
        "seconds_per_epoch": round(train_s / args.epochs, 1),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "versions": {
            "ultralytics": sys.modules["ultralytics"].__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "heldout_fp32": metrics,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(json.dumps(summary, indent=1), flush=True)
    (args.run_dir / "shapes-yolo11n" / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
