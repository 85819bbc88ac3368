"""Validation compares a large output chunk by chunk (vopt.validate.metrics.StreamingParity): its metrics are
those of the whole arrays, to rounding, whatever the chunks."""

from __future__ import annotations

import numpy as np
import pytest

from vopt.validate.metrics import StreamingParity, parity
from vopt.validate.reference import input_variation


@pytest.mark.parametrize("chunk", [1, 3, 8, 40])
def test_streamed_parity_is_the_whole_set_parity(chunk):
    rng = np.random.default_rng(0)
    # outputs that barely depend on the input (a large common part), where centered cosine matters
    common = rng.normal(5, 1, (1, 6, 9, 9))
    ref = (common + rng.normal(0, 0.05, (40, 6, 9, 9))).astype(np.float32)
    out = (ref + rng.normal(0, 0.01, ref.shape)).astype(np.float32)
    acc = StreamingParity()
    for i in range(0, len(ref), chunk):
        acc.add(ref[i : i + chunk], out[i : i + chunk])
    whole = {**parity(ref, out), "input_variation": input_variation(ref)}
    streamed = acc.metrics()
    assert set(streamed) == set(whole)
    for key, value in whole.items():
        assert streamed[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert whole["cosine"] > 0.9999 and whole["centered_cosine"] < 0.99  # the two really differ here


def test_streamed_parity_counts_nonfinite_values():
    acc = StreamingParity()
    ref = np.ones((4, 10), np.float32)
    out = ref.copy()
    out[1, :3] = np.nan
    acc.add(ref, out)
    assert acc.nonfinite == {"reference": 0, "artifact": 3}
