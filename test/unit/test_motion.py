"""Constant-twist motion on SE(2): the logarithm inverts the exponential, small angles included."""

import numpy as np

from wamdiff_ros.planning.motion import se2_exp, se2_log


def test_log_inverts_exp():
    xi = np.array([[4.0, 0.3, 0.8], [2.0, -0.1, 1e-9], [-1.0, 0.0, -2.0]])
    np.testing.assert_allclose(se2_log(se2_exp(xi)), xi, atol=1e-9)
