"""The scorer against its frozen outputs (test/unit/scoring/data/scorer_regression.npz, built by
``unit.helpers.scorer_fixture``): the bench scene and recorded test-bag scenes (highway, intersection with
a red light and a previous plan, merge, roundabout, stopped vehicle), a few thousand candidates."""

from __future__ import annotations

import numpy as np
import pytest

from unit.helpers.scorer_fixture import FIELDS, FIXTURE, candidates, digest, scene_from_arrays
from wamdiff_ros.bench.scorer import bench_candidates, bench_scene
from wamdiff_ros.scoring import scene_key, score

CONTINUOUS = ("ep", "pdms", "epdms", "progress", "ep_pdms", "oncoming_progress")
"""Sub-scores allowed to move by float rounding (≤ 1e-9); every other field must match exactly."""


@pytest.fixture(scope="module")
def frozen():
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


def _scene(frozen: dict, i: int):
    if i == 0:
        scene = bench_scene(20, 0)
        assert scene_key(scene) == str(frozen["bench_key"]), "bench_scene changed: rebuild the fixture"
        return scene
    prefix = f"s{i}_"
    return scene_from_arrays({k[len(prefix) :]: v for k, v in frozen.items() if k.startswith(prefix)})


@pytest.mark.parametrize("i", range(7))
def test_scores_match_the_frozen_outputs(frozen, i):
    scene = _scene(frozen, i)
    count = len(frozen[f"s{i}_pdms"])
    cands = candidates(scene, count, seed=i)
    assert digest([cands]) == str(frozen[f"s{i}_candidates_digest"]), "candidate generator changed"
    result = score(cands, scene)
    for k in FIELDS:
        want, got = frozen[f"s{i}_{k}"], getattr(result, k)
        if k in CONTINUOUS:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"scene {i} {k}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"scene {i} {k}")


def test_bench_4096_scores_are_bit_identical(frozen):
    scene = bench_scene(20, 0)
    cands = bench_candidates(scene, 4096, 0)
    assert digest([cands]) == str(frozen["bench4096_candidates_digest"]), "bench_candidates changed"
    result = score(cands, scene)
    assert digest(getattr(result, k) for k in FIELDS) == str(frozen["bench4096_digest"])
