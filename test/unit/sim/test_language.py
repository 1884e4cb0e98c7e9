"""Language from truth: instructions, VQA and reasoning are correct for the frame and stay inside the vocabulary."""

import numpy as np
import pytest

from wamdiff_ros.sim import language
from wamdiff_ros.sim.scenarios import load_scenario
from wamdiff_ros.sim.world import World
from wamdiff_ros.types import COMMANDS, Agents, AgentType, EgoState, Lane, LogFrame


def _road():
    """Three parallel eastbound lanes 4 m apart, ids 0 (left, y=4), 1 (middle, y=0), 2 (right, y=-4)."""
    x = np.arange(0.0, 301.0, 1.0)
    return [Lane(i, np.stack([x, np.full_like(x, y)], 1), 4.0) for i, y in enumerate((4.0, 0.0, -4.0))]


def _frame(agents_xyv, command="straight", instruction="Follow the road.", scenario="highway"):
    n = len(agents_xyv)
    poses = np.array([[[x, y, 0.0]] for x, y, _ in agents_xyv]).reshape(n, 1, 3)
    vel = np.array([[[v, 0.0]] for _, _, v in agents_xyv]).reshape(n, 1, 2)
    agents = Agents(
        np.arange(1, n + 1),
        np.full(n, int(AgentType.VEHICLE)),
        np.tile([5.0, 2.0], (n, 1)),
        poses,
        vel,
        np.ones((n, 1), bool),
    )
    ego = EgoState(pose=np.array([50.0, 0.0, 0.0]), velocity=np.array([20.0, 0.0]))
    return LogFrame(0, "t", ego, agents, [1], command, instruction, scenario)


def test_lead_vehicle_side_lanes_and_stopped_hazard():
    # ego centre at x = 51.5; a stopped car 40 m ahead (bumper gap 35 m), a car beside in the left lane.
    f = _frame([(91.5, 0.0, 0.0), (52.0, 4.0, 20.0)], scenario="stopped_vehicle")
    qa = dict(language.vqa(f, _road()))
    assert qa["How far ahead is the lead vehicle?"] == "The lead vehicle is 35 meters ahead."
    assert qa["How fast is the lead vehicle?"] == "The lead vehicle is stopped."
    assert qa["Is the left lane free?"].startswith("No, a vehicle")
    assert qa["Is the right lane free?"] == "Yes, the right lane is free."
    assert qa["Is there a hazard ahead?"] == "Yes, a stopped vehicle is in our lane 35 meters ahead."
    text = language.reasoning(f, _road())
    assert "stopped vehicle" in text and text.endswith(".")


def test_free_road_and_plan_actions():
    f = _frame([])
    qa = dict(language.vqa(f, _road()))
    assert qa["How far ahead is the lead vehicle?"].startswith("There is no lead vehicle")
    assert qa["Is there a hazard ahead?"] == "No hazard ahead."
    assert language.reasoning(f, _road()) == ""
    t = 0.5 * np.arange(1, 9)
    change_left = np.stack([20 * t, np.minimum(t, 2) * 2.0, 0 * t], 1)
    stop = np.zeros((8, 3))
    assert dict(language.vqa(f, _road(), change_left))["What should the ego vehicle do?"].startswith(
        "Change to the left lane"
    )
    assert dict(language.vqa(f, _road(), stop))["What should the ego vehicle do?"] == "Keep the lane and stop."


def test_cut_in_is_a_hazard():
    lanes = _road()
    f = _frame([(70.0, 3.0, 18.0)])
    f.agents.velocities[0, 0] = [18.0, -1.5]  # moving right, into the ego lane
    facts = language.scene_facts(f, lanes)
    assert facts.hazard is not None and facts.hazard[0] == "cut_in" and facts.hazard[2] == "left"


def test_instructions_follow_commands():
    assert language.instruction("left", "intersection", junction_ahead=True) == "Turn left at the intersection ahead."
    assert language.instruction("right", "roundabout", True, exit_number=1) == "At the roundabout, take the first exit."
    assert language.instruction("straight", "intersection", junction_ahead=False) == "Follow the road."
    assert language.instruction("lane_change_left", "lane_change") == "Change to the left lane."
    assert language.turn_of(0.0, np.pi / 2) == "left" and language.turn_of(0.0, -np.pi / 2) == "right"
    with pytest.raises(ValueError, match="command"):
        language.instruction("u_turn", "highway")


def test_all_generated_text_is_in_the_vocabulary():
    vocab = set(language.vocabulary())
    assert set("0123456789") <= vocab and len(vocab) < 200
    assert language.tokenize("Lead 35 m.") == ["lead", "3", "5", "m", "."]
    texts = [
        language.instruction(c, k, True, 2)
        for c in COMMANDS
        for k in ("intersection", "roundabout", "merge", "highway")
    ]
    for name, seed in [
        ("stopped_vehicle", 20000),
        ("roundabout", 20001),
        ("merge", 20000),
        ("intersection_left", 20002),
    ]:
        w = World(load_scenario(name), seed)
        for _ in range(3):
            f = w.frame()
            lanes = w.lanes_near()
            texts += [t for qa in language.vqa(f, lanes) for t in qa]
            texts += [language.reasoning(f, lanes, force=True), f.instruction]
            for _ in range(10):
                w.step(0.0, 0.0)
    unknown = {tok for t in texts for tok in language.tokenize(t)} - vocab
    assert not unknown
