"""vopt.validate.reference_memo: the reference's outputs computed once per (reference, images), read back
exactly, never from a damaged file, and not kept where there is no cache or they are not plain arrays."""

from __future__ import annotations

import numpy as np

from vopt.core.artifact import Artifact
from vopt.validate.reference_memo import ReferenceMemo


def _memo(root, sha="ab" * 32) -> ReferenceMemo:
    return ReferenceMemo(root, Artifact(path="m.safetensors", format="torch", sha256=sha), {"batch": 8})


def _counting(outputs):
    calls = []

    def compute():
        calls.append(1)
        return outputs

    return compute, calls


def test_outputs_are_computed_once_and_read_back_exactly(tmp_path):
    images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    want = {"logits": np.arange(40, dtype=np.float32).reshape(4, 10), "file": np.ones((4, 2), np.float16)}
    compute, calls = _counting(want)
    assert _memo(tmp_path).outputs(images, compute) is want
    memo = _memo(tmp_path)
    got = memo.outputs(images, compute)
    assert len(calls) == 1 and memo.summary() == "from the cache (4 images)"
    assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want)
    assert got["file"].dtype == np.float16
    # other images, or another reference: computed
    _memo(tmp_path).outputs(images[:2], compute)
    _memo(tmp_path, sha="cd" * 32).outputs(images, compute)
    assert len(calls) == 3


def test_a_damaged_file_is_recomputed_and_replaced(tmp_path):
    images = np.zeros((2, 3, 4, 4), np.float32)
    compute, calls = _counting({"y": np.ones((2, 3), np.float32)})
    _memo(tmp_path).outputs(images, compute)
    (kept,) = list((tmp_path / "references").rglob("*.npz"))
    raw = bytearray(kept.read_bytes())
    raw[-40] ^= 0xFF
    kept.write_bytes(bytes(raw))
    memo = _memo(tmp_path)
    assert np.array_equal(memo.outputs(images, compute)["y"], np.ones((2, 3)))
    assert len(calls) == 2 and memo.summary() == "computed (2 images), kept in the cache"
    assert len(list((tmp_path / "references").rglob("*.npz"))) == 1  # the damaged one is gone


def test_nothing_is_kept_without_a_cache_or_for_objects(tmp_path):
    images = np.zeros((1, 3, 4, 4), np.float32)
    compute, calls = _counting({"y": np.ones((1, 3), np.float32)})
    for _ in range(2):
        _memo(None).outputs(images, compute)
        _memo(tmp_path, sha="").outputs(images, compute)  # a reference with no sha256: no identity
    assert len(calls) == 4 and not (tmp_path / "references").exists()
    objects, calls = _counting({"y": np.array([{"box": 1}], dtype=object)})
    _memo(tmp_path).outputs(images, objects)
    _memo(tmp_path).outputs(images, objects)
    assert len(calls) == 2


def test_a_file_that_matches_its_name_but_is_no_npz_is_recomputed(tmp_path):
    from vopt.core.artifact import hash_file

    images = np.zeros((2, 3, 4, 4), np.float32)
    compute, calls = _counting({"y": np.ones((2, 3), np.float32)})
    _memo(tmp_path).outputs(images, compute)
    (kept,) = list((tmp_path / "references").rglob("*.npz"))
    kept.write_bytes(b"PK\x03\x04 a zip header and nothing of a zip after it")
    key = kept.stem.rsplit("-", 1)[0]
    kept.rename(kept.with_name(f"{key}-{hash_file(kept)}.npz"))
    assert np.array_equal(_memo(tmp_path).outputs(images, compute)["y"], np.ones((2, 3)))
    assert len(calls) == 2
