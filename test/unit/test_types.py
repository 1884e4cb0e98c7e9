import numpy as np
import pytest

from wamdiff_ros.types import (
    Agents,
    EgoState,
    Lane,
    Observation,
    PlanResult,
    SceneTruth,
    Trajectory,
    TrajectorySpec,
)


def test_trajectory_spec_times_follow_navsim_convention():
    spec = TrajectorySpec()
    assert spec.num_poses == 8 and spec.dt == 0.5 and spec.horizon == 4.0
    np.testing.assert_allclose(spec.times, [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4])
    assert TrajectorySpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kwargs", [{"num_poses": 0}, {"dt": 0.0}, {"dt": -0.1}])
def test_trajectory_spec_rejects_bad_grid(kwargs):
    with pytest.raises(ValueError, match="TrajectorySpec"):
        TrajectorySpec(**kwargs)


def test_trajectory_shape_must_match_spec():
    Trajectory(np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"Trajectory.poses: expected shape \(8, 3\)"):
        Trajectory(np.zeros((6, 3)))
    with pytest.raises(ValueError, match="Trajectory.poses"):
        Trajectory(np.zeros((8, 2)))


def test_ego_state_finiteness_and_speed():
    ego = EgoState([1, 2, 0.1], velocity=[5, 0.2])
    assert ego.speed == 5 and ego.is_finite()
    assert not EgoState([np.nan, 0, 0]).is_finite()
    with pytest.raises(ValueError, match="EgoState.pose"):
        EgoState([1, 2])


def test_observation_validates_images_and_command():
    ego = EgoState([0, 0, 0])
    img = np.zeros((4, 6, 3), np.uint8)
    obs = Observation({"front": img}, ego, stamp_ns=1_000_000_000)
    assert obs.ego_history.shape == (0, 3)
    with pytest.raises(ValueError, match=r"images\['front'\]: expected H×W×3 uint8"):
        Observation({"front": img.astype(np.float32)}, ego, stamp_ns=1_000_000_000)
    with pytest.raises(ValueError, match="Observation.command"):
        Observation({"front": img}, ego, stamp_ns=1_000_000_000, command="fly")


def test_plan_result_checks_candidate_scores():
    traj = Trajectory(np.zeros((8, 3)))
    r = PlanResult(traj, candidates=np.zeros((2, 8, 3)), candidate_scores=[0.1, 0.2])
    assert r.candidates.shape == (2, 8, 3)
    with pytest.raises(ValueError, match="candidate_scores"):
        PlanResult(traj, candidates=np.zeros((2, 8, 3)), candidate_scores=[0.1])
    with pytest.raises(ValueError, match="mode"):
        PlanResult(traj, mode="medium")


def test_lane_boundaries_are_offset_by_half_width_to_the_left_and_right():
    lane = Lane(3, [[0, 0], [10, 0]], width=4.0, markings=("solid", "dashed"))
    left, right = lane.boundaries
    np.testing.assert_allclose(left[:, 1], 2.0)
    np.testing.assert_allclose(right[:, 1], -2.0)
    np.testing.assert_allclose(lane.headings, 0.0)
    with pytest.raises(ValueError, match="markings"):
        Lane(4, [[0, 0], [1, 0]], 3.0, markings=("solid", "zigzag"))
    with pytest.raises(ValueError, match=">= 2 points"):
        Lane(5, [[0, 0]], 3.0)


def test_scene_truth_rejects_unknown_route_lane():
    lane = Lane(1, [[0, 0], [10, 0]], 3.5)
    kwargs = dict(ego=EgoState([0, 0, 0]), lanes=[lane], agents=Agents.empty(41), human_trajectory=np.zeros((8, 3)))
    assert SceneTruth(route_lane_ids=[1], **kwargs).lane(1) is lane
    with pytest.raises(ValueError, match=r"lanes \[2\] are not in"):
        SceneTruth(route_lane_ids=[1, 2], **kwargs)
