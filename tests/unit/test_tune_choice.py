"""`vopt tune`'s choice among the passing candidates: measured speed first, held-out fidelity among the ones
timing cannot tell apart, and the recipe as written unless the choice is clearly faster or more faithful."""

from __future__ import annotations

from vopt.tune.search import MIN_GAIN, Candidate, _choose


def _cand(name: str, img_s: float, agreement: float, cosine: float = 0.99) -> Candidate:
    c = Candidate(name, {} if name == "as written" else {"quantize.options.x": name}, status="built")
    c.img_s, c.fidelity = img_s, {"top1_agreement": agreement, "centered_cosine": cosine}
    return c


def test_a_clearly_faster_candidate_wins_over_a_more_faithful_one():
    base, fast, faithful = _cand("as written", 100, 0.95), _cand("fast", 130, 0.96), _cand("ok", 110, 0.99)
    assert _choose([base, fast, faithful], base) is fast


def test_among_candidates_timing_cannot_tell_apart_the_most_faithful_wins():
    base = _cand("as written", 100, 0.95)
    fast = _cand("fast", 130, 0.96)
    faithful = _cand("faithful", 130 / MIN_GAIN + 0.1, 0.99)  # within the noise of the fastest
    best = _choose([base, fast, faithful], base)
    assert best is faithful and "most faithful" in best.reason


def test_the_recipe_as_written_stays_unless_clearly_faster_or_more_faithful():
    base, twin = _cand("as written", 100, 0.97), _cand("twin", 104, 0.97)
    assert _choose([base, twin], base) is base and "kept as written" in twin.reason
    better = _cand("better", 101, 0.99)  # as fast, more faithful: an improvement timing cannot hide
    assert _choose([base, better], base) is better


def test_fidelity_ties_break_on_cosine_then_speed():
    a, b = _cand("as written", 100, 0.98, 0.990), _cand("b", 102, 0.98, 0.995)
    assert _choose([a, b], a) is b
    assert _choose([], a) is None


def test_openvino_tries_the_ort_qdq_scheme_unless_the_recipe_chose_its_scheme(tmp_path):
    """openvino compiles an ORT QDQ file as well as NNCF's IR (`Target.tune_schemes`): `vopt tune` builds it
    as one candidate, with that scheme's defaults, when the recipe names no scheme and no scheme options
    (nncf's options mean nothing to ort-qdq)."""
    import yaml

    from tests.conftest import tiny_model
    from vopt.recipe.resolve import load_recipe
    from vopt.registry import get_target
    from vopt.tune.search import candidates

    def names(target: str, **quantize) -> list[str]:
        path = tmp_path / f"{target}.yaml"
        q = {"precision": "int8", **quantize}
        path.write_text(
            yaml.safe_dump(
                {"name": "t", "model": tiny_model("resnet"), "compile": {"target": target}, "quantize": q}
            )
        )
        recipe = load_recipe(path).recipe
        return [c.name for c in candidates(recipe, get_target(target))]

    plain = names("openvino")
    assert plain[0] == "as written" and plain.count("scheme=ort-qdq") == 1
    assert "scheme=ort-qdq" not in names("openvino", options={"overflow_fix": "enable"})
    assert "scheme=ort-qdq" not in names("openvino", scheme="nncf")
    assert not [n for n in names("cpu") if n.startswith("scheme=")]
