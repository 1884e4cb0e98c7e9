"""Language from ground truth: navigation instructions, driving VQA pairs and short reasoning texts.

All text comes from fixed templates over a closed vocabulary (:func:`vocabulary`), so a small text
tokenizer covers it exactly. :func:`tokenize` lower-cases, splits off punctuation and splits numbers
into single digits: numbers are rounded to integers (metres, metres per second) and written as digit
tokens ``0``–``9``, so any distance or speed is expressible with ten number tokens.

Facts are computed from a :class:`~wamdiff_ros.types.LogFrame` and the lanes around it (the same
inputs a log has), so texts for logged and live frames agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from wamdiff_ros.geometry import compose, project_to_polyline, wrap_angle
from wamdiff_ros.sim.roadnet import LaneMap
from wamdiff_ros.types import COMMANDS, AgentType, Lane, LogFrame

ORDINALS = ("first", "second", "third", "fourth", "fifth")
SIDES = ("left", "right")

INSTRUCTIONS = {
    ("intersection", "left"): "Turn left at the intersection ahead.",
    ("intersection", "right"): "Turn right at the intersection ahead.",
    ("intersection", "straight"): "Go straight through the intersection ahead.",
    ("roundabout", "exit"): "At the roundabout, take the {ordinal} exit.",
    ("any", "lane_change_left"): "Change to the left lane.",
    ("any", "lane_change_right"): "Change to the right lane.",
    ("merge", "straight"): "Keep your lane, vehicles merge from the right.",
    ("any", "straight"): "Follow the road.",
}

QUESTIONS = {
    "lead_distance": "How far ahead is the lead vehicle?",
    "lead_speed": "How fast is the lead vehicle?",
    "left_free": "Is the left lane free?",
    "right_free": "Is the right lane free?",
    "hazard": "Is there a hazard ahead?",
    "action": "What should the ego vehicle do?",
}

ANSWERS = {
    "no_lead": "There is no lead vehicle within {n} meters.",
    "lead_distance": "The lead vehicle is {n} meters ahead.",
    "lead_speed": "The lead vehicle drives at {n} meters per second.",
    "lead_stopped": "The lead vehicle is stopped.",
    "side_free": "Yes, the {side} lane is free.",
    "side_busy": "No, a vehicle is in the {side} lane.",
    "side_none": "No, there is no {side} lane.",
    "hazard_stopped": "Yes, a stopped vehicle is in our lane {n} meters ahead.",
    "hazard_obstacle": "Yes, an obstacle blocks our lane {n} meters ahead.",
    "hazard_cut_in": "Yes, a vehicle from the {side} lane is cutting in {n} meters ahead.",
    "hazard_none": "No hazard ahead.",
}

REASONS = {
    "navigation": "Navigation: {instruction}",
    "lead": "The lead vehicle is {n} meters ahead at {m} meters per second.",
    "no_lead": "Our lane is clear ahead.",
    "side_free": "The {side} lane is free.",
    "side_busy": "The {side} lane is occupied.",
    "so": "So we {action}.",
}

ACTIONS = (
    "turn left",
    "turn right",
    "go straight through the junction",
    "change to the left lane",
    "change to the right lane",
    "keep the lane",
)
SPEED_ACTIONS = ("and stop", "and slow down", "and speed up", "and keep the speed")

LOOKAHEAD = 100.0
"""Range of the lead-vehicle and hazard questions [m]."""
SIDE_WINDOW = (-15.0, 20.0)
"""A side lane is free when no vehicle is within this longitudinal window of the ego centre [m]."""
COMPLEX = ("intersection", "roundabout", "merge", "stopped_vehicle", "cut_in", "lane_change")


def turn_of(heading_start: float, heading_end: float) -> str:
    """``left`` / ``straight`` / ``right`` from the heading change along a route (±45° thresholds)."""
    d = float(wrap_angle(heading_end - heading_start))
    return "left" if d > np.radians(45) else "right" if d < -np.radians(45) else "straight"


def instruction(command: str, kind: str, junction_ahead: bool = False, exit_number: int = 0) -> str:
    """Navigation instruction for a command in a scenario of type ``kind``."""
    if command not in COMMANDS:
        raise ValueError(f"instruction.command: expected one of {COMMANDS}, got {command!r}")
    if command.startswith("lane_change"):
        return INSTRUCTIONS[("any", command)]
    if junction_ahead and kind == "roundabout" and exit_number >= 1:
        return INSTRUCTIONS[("roundabout", "exit")].format(ordinal=ORDINALS[min(exit_number, len(ORDINALS)) - 1])
    if junction_ahead and kind == "intersection":
        return INSTRUCTIONS[("intersection", command)]
    if kind == "merge":
        return INSTRUCTIONS[("merge", "straight")]
    return INSTRUCTIONS[("any", "straight")]


_TOKEN = re.compile(r"[a-z]+|\d|[.,?:]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word, single-digit and punctuation tokens."""
    return _TOKEN.findall(text.lower())


def vocabulary() -> list[str]:
    """Every token the templates can produce (sorted): words, digits 0–9 and ``. , ? :``."""
    texts = [*INSTRUCTIONS.values(), *QUESTIONS.values(), *ANSWERS.values(), *REASONS.values()]
    texts += [*ORDINALS, *SIDES, *ACTIONS, *SPEED_ACTIONS, *COMMANDS]
    words = {t for text in texts for t in tokenize(re.sub(r"\{\w+\}", " ", text))}
    words |= set("0123456789")
    return sorted(words)


def _n(value: float) -> str:
    return str(max(0, round(float(value))))


@dataclass
class SceneFacts:
    """Facts of one frame the templates talk about (distances are bumper to bumper) [m, m/s]."""

    lead_gap: float | None
    lead_speed: float | None
    side_free: dict[str, bool | None]
    hazard: tuple[str, float, str] | None
    """(kind, gap, side): ``stopped``, ``obstacle`` or ``cut_in``."""


def scene_facts(frame: LogFrame, lanes: list[Lane]) -> SceneFacts:
    """Lead vehicle, free side lanes and hazards from a frame and its lanes."""
    lm = LaneMap(lanes)
    ego = frame.ego
    center = compose(ego.pose, np.array([1.5, 0.0, 0.0]))
    loc = lm.locate(center)
    if loc is None:
        return SceneFacts(None, None, {"left": None, "right": None}, None)
    lane_id, s_ego, _ = loc
    chain = lm.follow(lane_id, s_ego, LOOKAHEAD + 20.0, prefer=frame.route_lane_ids)
    line = lm.polyline(chain, s_ego, back=30.0)
    ag = frame.agents
    lead_gap = lead_speed = None
    hazard = None
    if len(ag):
        xy = ag.poses[:, 0, :2]
        s_line_ego, _, _ = project_to_polyline(center[:2], line)
        s, d, h = project_to_polyline(xy, line)
        speed = np.linalg.norm(ag.velocities[:, 0], axis=1)
        gap = s - s_line_ego - ag.sizes[:, 0] / 2 - 2.5
        half = float(lm.lanes[lane_id].width.mean()) / 2
        in_lane = (np.abs(d) < half) & (gap > -2.5) & (gap < LOOKAHEAD)
        if in_lane.any():
            k = int(np.flatnonzero(in_lane)[np.argmin(gap[in_lane])])
            lead_gap, lead_speed = float(max(gap[k], 0.0)), float(speed[k])
            if ag.types[k] == AgentType.STATIC:
                hazard = ("obstacle", lead_gap, "")
            elif speed[k] < 1.0 and ego.speed > 1.0:
                hazard = ("stopped", lead_gap, "")
        if hazard is None:
            lat_v = -np.sin(h) * ag.velocities[:, 0, 0] + np.cos(h) * ag.velocities[:, 0, 1]
            toward = (np.abs(d) >= half) & (np.abs(d) < 3 * half) & (np.sign(d) * lat_v < -0.5)
            cut = toward & (gap > -2.5) & (gap < 40.0)
            if cut.any():
                k = int(np.flatnonzero(cut)[np.argmin(gap[cut])])
                hazard = ("cut_in", float(max(gap[k], 0.0)), "left" if d[k] > 0 else "right")
    side_free: dict[str, bool | None] = {}
    for side, sign in (("left", 1), ("right", -1)):
        j = lm.side_lane(lane_id, center[:2], sign)
        if j is None:
            side_free[side] = None
            continue
        busy = False
        if len(ag):
            sj_ego, _, _ = lm.project(j, center[:2])
            for a in range(len(ag)):
                sj, dj, _ = lm.project(j, ag.poses[a, 0, :2])
                if abs(dj) < float(lm.lanes[j].width.mean()) / 2 and SIDE_WINDOW[0] <= sj - sj_ego <= SIDE_WINDOW[1]:
                    busy = True
                    break
        side_free[side] = not busy
    return SceneFacts(lead_gap, lead_speed, side_free, hazard)


def plan_action(frame: LogFrame, plan: np.ndarray | None, facts: SceneFacts, dt: float = 0.5) -> str:
    """The right action in words: from the plan (T, 3) in base_link when given, else from the facts."""
    cmd = frame.command
    if cmd in ("left", "right"):
        lateral = f"turn {cmd}"
    elif plan is not None and abs(plan[-1, 1]) > 2.0 and abs(plan[-1, 2]) < np.radians(30):
        lateral = "change to the left lane" if plan[-1, 1] > 0 else "change to the right lane"
    elif plan is None and cmd.startswith("lane_change"):
        lateral = f"change to the {cmd.rsplit('_', 1)[1]} lane"
    elif "intersection" in frame.instruction.lower() or "roundabout" in frame.instruction.lower():
        lateral = "go straight through the junction"
    else:
        lateral = "keep the lane"
    v0 = frame.ego.speed
    if plan is not None and len(plan) >= 2:
        step = np.linalg.norm(plan[-1, :2] - plan[-2, :2]) / dt
        travelled = np.linalg.norm(plan[-1, :2])
        if travelled < 1.0:
            speed = "and stop"
        elif step < v0 - 2.0:
            speed = "and slow down"
        elif step > v0 + 2.0:
            speed = "and speed up"
        else:
            speed = "and keep the speed"
    elif facts.hazard is not None:
        speed = "and slow down"
    else:
        speed = "and keep the speed"
    return f"{lateral} {speed}"


def vqa(frame: LogFrame, lanes: list[Lane], plan: np.ndarray | None = None) -> list[tuple[str, str]]:
    """Driving question–answer pairs of a frame: lead distance and speed, free side lanes, hazard, action."""
    f = scene_facts(frame, lanes)
    out = []
    if f.lead_gap is None:
        out.append((QUESTIONS["lead_distance"], ANSWERS["no_lead"].format(n=_n(LOOKAHEAD))))
    else:
        out.append((QUESTIONS["lead_distance"], ANSWERS["lead_distance"].format(n=_n(f.lead_gap))))
        if f.lead_speed < 0.5:
            out.append((QUESTIONS["lead_speed"], ANSWERS["lead_stopped"]))
        else:
            out.append((QUESTIONS["lead_speed"], ANSWERS["lead_speed"].format(n=_n(f.lead_speed))))
    for side in SIDES:
        free = f.side_free[side]
        key = "side_none" if free is None else "side_free" if free else "side_busy"
        out.append((QUESTIONS[f"{side}_free"], ANSWERS[key].format(side=side)))
    if f.hazard is None:
        out.append((QUESTIONS["hazard"], ANSWERS["hazard_none"]))
    else:
        kind, gap, side = f.hazard
        out.append((QUESTIONS["hazard"], ANSWERS[f"hazard_{kind}"].format(n=_n(gap), side=side)))
    action = plan_action(frame, plan, f)
    out.append((QUESTIONS["action"], action[0].upper() + action[1:] + "."))
    return out


def is_complex(frame: LogFrame, facts: SceneFacts) -> bool:
    """Scenes that get a reasoning text: junctions, merges, lane changes and any hazard."""
    return frame.scenario in COMPLEX or facts.hazard is not None or frame.command != "straight"


def reasoning(frame: LogFrame, lanes: list[Lane], plan: np.ndarray | None = None, force: bool = False) -> str:
    """A short reasoning text for complex scenes (empty for plain cruising unless ``force``)."""
    f = scene_facts(frame, lanes)
    if not (force or is_complex(frame, f)):
        return ""
    parts = []
    if frame.instruction and frame.instruction != INSTRUCTIONS[("any", "straight")]:
        parts.append(REASONS["navigation"].format(instruction=frame.instruction[0].lower() + frame.instruction[1:]))
    if f.lead_gap is None:
        parts.append(REASONS["no_lead"])
    else:
        parts.append(REASONS["lead"].format(n=_n(f.lead_gap), m=_n(f.lead_speed)))
    if f.hazard is not None:
        kind, gap, side = f.hazard
        parts.append(ANSWERS[f"hazard_{kind}"].format(n=_n(gap), side=side).removeprefix("Yes, ").capitalize())
    for side in SIDES:
        if f.side_free[side] is not None:
            parts.append(REASONS["side_free" if f.side_free[side] else "side_busy"].format(side=side))
    parts.append(REASONS["so"].format(action=plan_action(frame, plan, f)))
    return " ".join(parts)
