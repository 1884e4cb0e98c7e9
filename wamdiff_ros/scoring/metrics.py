"""NAVSIM metric constants (navsim ``PDMScorerConfig``, ``pdm_comfort_metrics``; shared/REFERENCES.md).

Names follow the metric they belong to; units in the trailing comments.
"""

from __future__ import annotations

SIM_DT = 0.1  # [s] simulation / scoring step
SIM_HORIZON = 4.0  # [s]

# Weights. PDMS (v1): NC·DAC·(5·TTC + 5·EP + 2·C)/12.
# EPDMS (v2): Π(NC, DAC, DDC, TLC)·(5·EP + 5·TTC + 2·LK + 2·HC + 2·EC)/16.
W_EP = 5.0
W_TTC = 5.0
W_C = 2.0
W_LK = 2.0
W_HC = 2.0
W_EC = 2.0

# NC: at-fault collisions.
NC_AGENT = 0.0  # score after an at-fault collision with a vehicle, pedestrian or cyclist
NC_STATIC = 0.5  # score after an at-fault collision with a static object
COLLISION_STOPPED_SPEED = 5e-2  # [m/s] ego or track at or below this speed counts as stopped (nuPlan)
AHEAD_ANGLE_DEG = 30.0  # agent "ahead": bearing within this angle of the ego heading (nuPlan is_agent_ahead)
BEHIND_ANGLE_DEG = 150.0  # agent "behind": bearing beyond this angle (nuPlan is_agent_behind)

# TTC: constant-velocity projections of the ego box.
TTC_PROJECTION_STEPS = (0, 3, 6, 9)  # [steps of SIM_DT] → 0, 0.3, 0.6, 0.9 s
TTC_STOPPED_SPEED = 5e-3  # [m/s] TTC is not checked while the ego is slower than this

# EP: ego progress along the route centreline.
EP_MIN_PROGRESS = 5.0  # [m] if the best masked progress is at most this, EP = 1 (0 where multiplicative = 0)

# DDC: driving direction compliance.
DDC_HORIZON = 1.0  # [s] window over which oncoming progress is summed
DDC_COMPLIANCE = 2.0  # [m] oncoming progress below this → 1
DDC_VIOLATION = 6.0  # [m] below this → 0.5, else 0
ONCOMING_ANGLE_DEG = 90.0  # lane direction vs ego heading beyond this → oncoming lane

# LK: lane keeping.
LK_DEVIATION = 0.5  # [m] lateral deviation limit
LK_WINDOW = 2.0  # [s] continuous violation that fails LK

# HC / C comfort bounds (strict inequalities, as navsim's _within_bound).
MAX_LON_ACCEL = 2.40  # [m/s²]
MIN_LON_ACCEL = -4.05  # [m/s²]
MAX_ABS_LAT_ACCEL = 4.89  # [m/s²]
MAX_ABS_JERK = 8.37  # [m/s³]
MAX_ABS_LON_JERK = 4.13  # [m/s³]
MAX_ABS_YAW_RATE = 0.95  # [rad/s]
MAX_ABS_YAW_ACCEL = 1.93  # [rad/s²]

# EC: RMS of the difference between consecutive frames' simulated plans (≤ passes).
EC_ACCEL = 0.7  # [m/s²]
EC_JERK = 0.5  # [m/s³]
EC_YAW_RATE = 0.1  # [rad/s]
EC_YAW_ACCEL = 0.1  # [rad/s²]
EC_MAX_GAP = 0.55  # [s] frames further apart than this are not compared (EC = 1)

# Open-loop (UniAD / VAD): evaluation horizons.
OPEN_LOOP_HORIZONS = (1.0, 2.0, 3.0)  # [s]

SUB_METRICS = ("NC", "DAC", "DDC", "TLC", "EP", "TTC", "LK", "HC", "EC", "C")
TOTALS = ("PDMS", "EPDMS")
