"""Text and trajectory tokenizers, the joint token space and the sequence layout."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wamdiff_ros.config import ConfigError
from wamdiff_ros.models.text_tokenizer import SPECIALS, TextTokenizer, split_words
from wamdiff_ros.planners.wamdiff.config import AxisBinsConfig, TrajectoryTokensConfig, tiny_config
from wamdiff_ros.planners.wamdiff.layout import SequenceLayout, TokenSpace, make_sample
from wamdiff_ros.planners.wamdiff.net import build_layout, build_token_space
from wamdiff_ros.planners.wamdiff.trajectory_tokenizer import AxisBinning, TrajectoryTokenizer
from wamdiff_ros.planning.motion import constant_twist_path
from wamdiff_ros.types import EgoState

TOK = TrajectoryTokenizer()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-5.0, 130.0), min_size=8, max_size=8),
    st.lists(st.floats(-30.0, 30.0), min_size=8, max_size=8),
)
def test_trajectory_round_trip_error_within_half_bin(xs, ys):
    wp = np.stack([xs, ys], axis=1)
    back = TOK.decode(TOK.encode(wp))
    err = np.abs(back[:, :2] - wp)
    bound = TOK.max_error(wp)
    assert (err <= bound + 1e-9).all()
    assert (bound <= TOK.max_error() + 1e-12).all()


def test_default_quantisation_figures():
    rep = TOK.report()
    assert rep["x"]["max_error_m"] == pytest.approx(0.20, abs=1e-9)  # within 0.2 m of 0; 0.10 elsewhere
    assert TOK.x.max_error(np.array([5.0]))[0] == pytest.approx(0.10, abs=1e-9)
    y = rep["y"]["max_error_at_m"]
    assert y["0"] == pytest.approx(0.068, abs=1e-3) and 0.06 < y["3.5"] < 0.07 < y["10"] < 0.18 < y["30"] <= 0.51
    assert TOK.num_tokens == 16


def test_zero_is_exact_straight_ahead_and_standing_still_decode_without_offset():
    wp = np.zeros((8, 2))
    wp[:, 0] = [0.0, 0.05, -0.05, 0.19, 3.0, 6.0, 9.0, 12.0]
    wp[:, 1] = [0.0, 0.01, -0.01, 0.06, -0.06, 1e-6, -1e-6, 0.0]
    back = TOK.decode(TOK.encode(wp))
    np.testing.assert_array_equal(back[:4, 0], 0.0)  # x bins [-0.2, 0) and [0, 0.2) decode to 0
    np.testing.assert_array_equal(back[:, 1], 0.0)  # both y bins meeting at 0 decode to 0
    np.testing.assert_allclose(back[4:, 0], wp[4:, 0], atol=0.1)  # other bins: their centres
    ax = AxisBinning(AxisBinsConfig(-1.0, 1.0, 5))  # odd count: 0 is a centre already, nothing moves
    np.testing.assert_allclose(ax.decode(ax.encode([0.0, 0.3, -0.3])), [0.0, 0.4, -0.4], atol=1e-12)
    assert ax.max_error() == pytest.approx(0.2)


def test_constant_velocity_prior_tokens_encode_the_offset_from_the_ego_arc():
    cfg = TrajectoryTokensConfig(
        AxisBinsConfig(-40.0, 40.0, 675), AxisBinsConfig(-30.0, 30.0, 200, 2.0), prior="constant_velocity"
    )
    tok = TrajectoryTokenizer(cfg)
    ego = EgoState(pose=np.zeros(3), velocity=np.array([10.0, 0.0]), yaw_rate=0.2)
    arc = constant_twist_path(ego, tok.spec.times)
    ids = tok.encode(arc, ego)
    np.testing.assert_array_equal(ids[0::2], tok.x.encode(np.zeros(8)))  # on the arc: zero offsets
    np.testing.assert_allclose(tok.decode(ids, ego)[:, :2], arc[:, :2], atol=1e-12)  # ... decoded exactly
    braking = arc[:, :2] * np.linspace(1.0, 0.6, 8)[:, None]  # 40 m ahead at 4 s: outside x's ±40 m without the prior
    back = tok.decode(tok.encode(braking, ego), ego)
    np.testing.assert_allclose(back[:, :2], braking, atol=tok.max_error())
    with pytest.raises(ValueError, match="ego state is required"):
        tok.encode(arc)
    with pytest.raises(ValueError, match="finite"):
        tok.decode(ids, EgoState(pose=np.zeros(3), velocity=np.array([np.nan, 0.0])))
    with pytest.raises(ConfigError, match="trajectory.prior"):
        TrajectoryTokensConfig(prior="spline")
    np.testing.assert_array_equal(TOK.encode(arc, ego), TOK.encode(arc))  # no prior: the ego is not used


def test_uniform_bins_and_clamping():
    ax = AxisBinning(AxisBinsConfig(0.0, 10.0, 10))
    np.testing.assert_allclose(ax.centers, np.arange(10) + 0.5)
    np.testing.assert_array_equal(ax.encode([-3.0, 0.0, 0.99, 1.0, 9.99, 10.0, 50.0]), [0, 0, 0, 1, 9, 9, 9])
    assert ax.max_error() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="bin indices"):
        ax.decode([10])


def test_asinh_bins_are_finer_near_zero_and_symmetric():
    ax = AxisBinning(AxisBinsConfig(-30.0, 30.0, 200, scale=2.0))
    w = ax.widths
    assert w[100] < w[150] < w[199]
    np.testing.assert_allclose(w, w[::-1], rtol=1e-9)


def test_tokens_are_interleaved_x_y():
    cfg = TrajectoryTokensConfig(AxisBinsConfig(0.0, 8.0, 8), AxisBinsConfig(-4.0, 4.0, 8))
    tok = TrajectoryTokenizer(cfg)
    wp = np.stack([np.arange(8) + 0.5, np.full(8, -3.5)], axis=1)
    np.testing.assert_array_equal(tok.encode(wp), np.ravel(np.stack([np.arange(8), np.zeros(8)], 1)))


def test_trajectory_tokenizer_rejects_bad_input():
    with pytest.raises(ValueError, match="expected shape"):
        TOK.encode(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="finite"):
        TOK.encode(np.full((8, 2), np.nan))
    with pytest.raises(ValueError, match="expected 16"):
        TOK.decode(np.zeros(10, np.int64))


def test_text_round_trip_and_unknown_words():
    tok = TextTokenizer(["The lead car brakes.", "Slow down to 12.5 m/s"])
    assert tok.tokens[: len(SPECIALS)] == list(SPECIALS)
    assert (tok.pad_id, tok.mask_id, tok.unk_id) == (0, 1, 2)
    text = "the lead car brakes, slow down to 12.5 m/s."
    assert tok.decode(tok.encode(text)) == text
    ids = tok.encode("The zebra brakes")
    assert ids[1] == tok.unk_id and tok.decode(ids) == "the [UNK] brakes"
    assert tok.decode([*tok.encode("stop"), tok.eos_id, *tok.encode("car")]) == "stop"
    with pytest.raises(ValueError, match="outside the text vocabulary"):
        tok.decode([len(tok)])


def test_split_words():
    assert split_words("Lane_change_left, don't GO!") == ["lane_change_left", ",", "don't", "go", "!"]
    assert split_words("30.5") == ["3", "0", ".", "5"]
    with pytest.raises(ValueError):
        split_words(3)


def test_text_vocab_is_deterministic_and_deduplicated():
    a = TextTokenizer(["car car", "truck", "[PAD]"])
    b = TextTokenizer(["car car", "truck", "[PAD]"])
    assert a.tokens == b.tokens
    assert len(set(a.tokens)) == len(a.tokens)


def test_token_space_and_allowed_masks():
    cfg = tiny_config()
    space = build_token_space(cfg)
    assert isinstance(space, TokenSpace)
    wp = np.stack([np.linspace(1, 30, 8), np.linspace(0, 3, 8)], 1)
    ids = space.encode_trajectory(wp)
    allowed = space.trajectory_allowed()
    assert allowed[np.arange(16), ids].all()
    assert not allowed[0, space.y_offset] and not allowed[1, space.x_offset]
    np.testing.assert_allclose(space.decode_trajectory(ids)[:, :2], wp, atol=space.traj.max_error())
    with pytest.raises(ValueError, match="x bins at even"):
        space.decode_trajectory(ids[::-1])
    text_ok = space.text_allowed(3)
    assert text_ok[:, space.text.eos_id].all() and not text_ok[:, space.text.mask_id].any()
    assert not text_ok[:, space.x_offset :].any()


def test_prompt_and_samples():
    cfg = tiny_config()
    space, lay = build_token_space(cfg), build_layout(cfg)
    assert isinstance(lay, SequenceLayout)
    t = space.text
    p = lay.prompt_ids(t, "left", "slow down the lead car brakes now please")
    assert p[0] == t.bos_id and p[1] == t.plan_id and p[2] == t.index["left"] and p[3] == t.sep_id
    assert len(p) == cfg.layout.prompt_len and p[-1] == t.sep_id
    with pytest.raises(ValueError, match="command"):
        lay.prompt_ids(t, "fly", "")
    wp = np.zeros((8, 2))
    motion = make_sample(space, lay, "motion", "straight", "", waypoints=wp)
    assert motion.present.tolist() == [False, True] and motion.complex == 0.0
    assert motion.answer.sum() == 16 and motion.answer[lay.traj_offset :].all()
    reason = make_sample(space, lay, "reasoning", "straight", "", "lead car brakes", wp)
    assert reason.present.tolist() == [True, True] and reason.complex == 1.0
    body = reason.tokens[lay.text_offset : lay.traj_offset]
    assert t.decode(body) == "lead car brakes" and t.eos_id in body
    vqa = make_sample(space, lay, "vqa", "straight", "how many lanes", "3")
    assert vqa.present.tolist() == [True, False] and vqa.tokens[1] == t.vqa_id
    with pytest.raises(ValueError, match="waypoints"):
        make_sample(space, lay, "motion", "straight")
    with pytest.raises(ValueError, match="task"):
        make_sample(space, lay, "dance", "straight")
