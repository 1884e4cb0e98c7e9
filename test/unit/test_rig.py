import numpy as np
import pytest

from wamdiff_ros.config import ConfigError
from wamdiff_ros.rig import CameraSpec, Rig, load_rig


def test_default_rig_has_three_forward_cameras():
    rig = load_rig()
    assert rig.names == ["front", "front_left", "front_right"]
    assert Rig.from_dict(rig.to_dict()) == rig


def test_point_on_the_optical_axis_projects_to_the_principal_point():
    cam = CameraSpec("front", 256, 128, 90.0, (1.5, 0.0, 1.6), (0.0, 0.0, 0.0))
    uv, depth = cam.project(np.array([[21.5, 0.0, 1.6]]))
    np.testing.assert_allclose(uv[0], [127.5, 63.5])
    assert depth[0] == pytest.approx(20.0)
    # 90° FOV: a point 45° to the left lands on the left image edge; z up is image up.
    uv, _ = cam.project(np.array([[11.5, 10.0, 1.6], [11.5, 0.0, 2.6]]))
    assert uv[0, 0] == pytest.approx(127.5 - 128.0)
    assert uv[1, 1] < 63.5


def test_positive_pitch_looks_down_and_yaw_turns_left():
    down = CameraSpec("c", 64, 64, 60.0, (0, 0, 1.5), (0.0, 0.2, 0.0))
    uv, _ = down.project(np.array([[10.0, 0.0, 1.5]]))
    assert uv[0, 1] < 31.5  # a level point appears above the centre when the camera pitches down
    left = CameraSpec("c", 64, 64, 60.0, (0, 0, 1.5), (0.0, 0.0, np.pi / 2))
    _, depth = left.project(np.array([[0.0, 10.0, 1.5], [10.0, 0.0, 1.5]]))
    assert depth[0] == pytest.approx(10.0) and abs(depth[1]) < 1e-9


def test_rig_validation_messages():
    with pytest.raises(ConfigError, match="fov_deg"):
        CameraSpec("c", 64, 64, 200.0, (0, 0, 1))
    with pytest.raises(ConfigError, match="unique"):
        Rig("r", (CameraSpec("c", 64, 64, 60, (0, 0, 1)),) * 2)
    with pytest.raises(ConfigError, match="cameras"):
        Rig.from_dict({"name": "r"}, "x.yaml")


def test_mismatch_reasons():
    rig = load_rig()
    assert rig.mismatch(rig) is None
    d = rig.to_dict()
    d["cameras"][1]["width"] = 320
    assert "front_left" in rig.mismatch(Rig.from_dict(d))
    d = rig.to_dict()
    d["cameras"] = d["cameras"][:2]
    assert "names/order" in rig.mismatch(Rig.from_dict(d))


def test_view_problem_accepts_the_same_view_at_any_resolution_and_names_what_differs():
    cam = CameraSpec("front", 256, 128, 90.0, (1.5, 0.0, 1.6))
    assert cam.view_problem(256, 128, cam.focal) is None
    assert cam.view_problem(1920, 960, cam.focal * 7.5) is None  # 7.5×, same field of view
    assert cam.view_problem(1920, 1080, None) == (
        "aspect ratio differs: 1920×1080 px (1.778), the rig's 256×128 px (2.000)"
    )
    fov60 = 0.5 * 512 / np.tan(np.radians(30.0))
    assert cam.view_problem(512, 256, fov60) == (
        "field of view differs: 60.0° (focal length 443.4 px at 512 px wide), the rig's 90.0° (128.0 px at 256 px wide)"
    )
    big = Rig("big", (CameraSpec("front", 512, 256, 90.0, (1.5, 0.0, 1.6)),))
    small = Rig("small", (cam,))
    assert small.view_mismatch(big) is None and small.mismatch(big) is not None
    assert "field of view" in small.view_mismatch(Rig("n", (CameraSpec("front", 512, 256, 60.0, (0, 0, 1)),)))
