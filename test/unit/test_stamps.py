"""The past-frame rule shared by training data and the planning loop."""

from wamdiff_ros.stamps import past_frame_index

TICKS = [k * 100_000_000 for k in range(12)]  # 10 Hz


def test_the_frame_nearest_the_age_before_the_last_is_picked():
    assert past_frame_index(TICKS, 1.0) == 1
    assert past_frame_index(TICKS, 0.5) == 6
    assert past_frame_index(TICKS, 0.04) == 11  # nearer the last frame itself than the one before


def test_ties_go_to_the_earlier_frame_and_short_logs_give_their_oldest():
    assert past_frame_index(TICKS, 0.25) == 8  # 0.2 and 0.3 s before are equally near
    assert past_frame_index(TICKS[:3], 1.0) == 0
    assert past_frame_index(TICKS[:1], 1.0) == 0


def test_unusable_frames_are_skipped_and_the_last_is_the_last_resort():
    usable = [True] * 12
    usable[1] = False
    assert past_frame_index(TICKS, 1.0, usable) == 0  # 0.1 s either side: the earlier
    assert past_frame_index(TICKS, 1.0, [False] * 12) == 11
