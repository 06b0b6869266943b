"""Our converter against cv_bridge, where cv_bridge imports (it is not installable from PyPI)."""
from __future__ import annotations

import numpy as np
import pytest

from ros_harness import requires_ros


@requires_ros
@pytest.mark.ros
@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'mono8', 'bgra8', 'rgba8'])
def test_same_array_as_cv_bridge(encoding):
    cv_bridge = pytest.importorskip('cv_bridge', reason='cv_bridge not installed (needs a ROS 2 install)')
    import cv2
    from std_msgs.msg import Header

    from fer_ros.io.image_codec import decode_message
    from fer_ros.ros.convert import bgr_to_image
    bgr = cv2.imread(str(__import__('pathlib').Path(__file__).parents[1] / 'assets' / 'astronaut.jpg'))
    msg = bgr_to_image(bgr, Header(), encoding)
    ours = decode_message(msg, 10**8)
    theirs = cv_bridge.CvBridge().imgmsg_to_cv2(msg, desired_encoding='bgr8')
    assert np.array_equal(ours, theirs)
