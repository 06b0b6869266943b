"""ROS4HRI (REP-155) output: fer_node with ``hri_output: true`` in its own process, read from this process
the way a ros4hri consumer (pyhri / libhri) reads faces: /humans/faces/tracked first, then each listed
face's own topics, subscribed when its id appears.

hri_msgs comes from the ROS install, or from the test overlay that `make test` builds out of
../shared/ros-extras (scripts/ros_extras.sh); without either these tests skip with the reason.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from fer_ros.util.processes import wait_until

import ros_extras
from ros_harness import image_msg, requires_ros, start_camera, start_node

pytestmark = [pytest.mark.ros, requires_ros]


class Ros4HriConsumer:
    """What libhri does for faces: follow /humans/faces/tracked and subscribe to each new face's topics."""

    def __init__(self, node) -> None:
        from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D
        from sensor_msgs.msg import Image
        self._types = {'expression': Expression, 'roi': NormalizedRegionOfInterest2D, 'cropped': Image}
        self.node = node
        self.lock = threading.Lock()
        self.tracked: list = []                        # IdsList messages in arrival order
        self.per_face: dict[str, dict[str, list]] = {}  # id -> topic -> messages
        node.create_subscription(IdsList, '/humans/faces/tracked', self._on_tracked, 100)

    def _on_tracked(self, msg) -> None:
        with self.lock:
            self.tracked.append(msg)
            for face_id in msg.ids:
                if face_id not in self.per_face:
                    self.per_face[face_id] = {topic: [] for topic in self._types}
                    for topic, kind in self._types.items():
                        self.node.create_subscription(kind, f'/humans/faces/{face_id}/{topic}',
                                                      self._recorder(face_id, topic), 100)

    def _recorder(self, face_id: str, topic: str):
        def record(msg) -> None:
            with self.lock:
                self.per_face[face_id][topic].append(msg)
        return record

    def snapshot(self):
        with self.lock:
            return list(self.tracked), {i: {t: list(m) for t, m in d.items()} for i, d in self.per_face.items()}


def _stamp(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def test_ros4hri_consumer_reads_tracked_faces_and_their_expressions(tmp_path, collector):
    ros_extras.require('hri_msgs.msg')
    from hri_msgs.msg import Expression
    consumer = Ros4HriConsumer(collector.node)
    node = start_node(tmp_path, {'hri_output': True})
    try:
        collector.wait_node_ready(node)
        camera = start_camera(tmp_path, {'rate_hz': 30.0, 'num_faces': 2, 'frame_id': 'cam_hri'})

        def two_faces_followed() -> bool:
            tracked, faces = consumer.snapshot()
            settled = [m for m in tracked if len(m.ids) == 2]
            return len(settled) >= 10 and all(len(faces.get(i, {}).get('expression', [])) >= 3 for i in settled[-1].ids)
        try:
            collector.wait_for(two_faces_followed, 120, node, 'ten tracked lists of two faces and their expressions')
        finally:
            assert camera.stop() == 0, camera.output()
        tracked, faces = consumer.snapshot()
        # the expression arrays of those frames (another topic: they may still be on their way)
        collector.wait_for(lambda: {_stamp(m.header) for m in tracked} <= {_stamp(m.header) for _, m in
                                                                          collector.snapshot()[0]},
                           30, node, 'the expression arrays of the tracked lists')
        arrays = {_stamp(m.header): m for _, m in collector.snapshot()[0]}

        # the tracked list is the faces of `expressions`, with the input image's header; ids stay while tracked
        for msg in tracked:
            assert msg.header.frame_id == 'cam_hri'
            assert list(msg.ids) == [f.face_id for f in arrays[_stamp(msg.header)].faces]
        two = [tuple(sorted(m.ids)) for m in tracked if len(m.ids) == 2]
        assert len(set(two[-10:])) == 1, f'ids changed on still faces: {two[-10:]}'

        words = {getattr(Expression, name) for name in dir(Expression) if name.isupper()
                 and isinstance(getattr(Expression, name), str)}
        for face_id in two[-1]:
            for expression in faces[face_id]['expression']:
                same_frame = {f.face_id: f for f in arrays[_stamp(expression.header)].faces}[face_id]
                assert expression.header.frame_id == 'cam_hri'
                assert expression.expression in words and expression.expression == same_frame.expression
                assert expression.confidence == pytest.approx(same_frame.confidence, abs=1e-6)
                assert expression.valence == pytest.approx(same_frame.valence, abs=1e-6)
                assert expression.arousal == pytest.approx(same_frame.arousal, abs=1e-6)
            for roi in faces[face_id]['roi']:
                box = {f.face_id: f for f in arrays[_stamp(roi.header)].faces}[face_id].roi
                assert 0.0 <= roi.xmin < roi.xmax <= 1.0 and 0.0 <= roi.ymin < roi.ymax <= 1.0
                # the same box as the FaceExpression's pixel ROI (that one is rounded to whole pixels)
                assert roi.xmin * 640 == pytest.approx(box.x_offset, abs=1.0)
                assert roi.ymax * 480 == pytest.approx(box.y_offset + box.height, abs=1.0)
                assert 0.0 < roi.c <= 1.0
        cropped = [m for i in two[-1] for m in faces[i]['cropped']]
        assert cropped, 'no cropped face while subscribed'
        assert all((m.width, m.height, m.encoding) == (128, 128, 'bgr8') for m in cropped)
        # a cropped face is not black: the face was copied in
        assert max(np.frombuffer(bytes(m.data), np.uint8).std() for m in cropped) > 10

        # the faces leave (frames without a face): an empty tracked list, and their topics go away
        blank = image_msg(0.0, 'cam_hri', np.zeros((480, 640, 3), np.uint8))
        pub = collector.publisher(type(blank), '/image')
        gone = set(two[-1])

        def faces_gone() -> bool:
            latest = consumer.snapshot()[0][-1]
            return not latest.ids and not any(
                collector.node.count_publishers(f'/humans/faces/{i}/expression') for i in gone)
        for _ in range(600):            # one blank frame, then up to 0.1 s for the condition, again
            blank.header.stamp = collector.node.get_clock().now().to_msg()
            pub.publish(blank)
            try:
                wait_until(faces_gone, 0.1, node, 'the faces to leave')
                break
            except TimeoutError:
                continue
        else:
            pytest.fail(f'faces still tracked: {consumer.snapshot()[0][-1].ids}')
    finally:
        assert node.stop() == 0, node.output()


def test_hri_output_without_hri_msgs_names_the_parameter(monkeypatch):
    from fer_ros.ros import hri_output
    from fer_ros.settings.params import ParameterError
    monkeypatch.setitem(sys.modules, 'hri_msgs', None)   # what Python does for a package that is not installed
    with pytest.raises(ParameterError, match="'hri_output'"):
        hri_output.import_hri_msgs()


def test_normalized_roi_and_cropped_face():
    from fer_ros.ros.hri_output import cropped_face, normalized_box
    assert normalized_box((64.0, 48.0, 128.0, 96.0), 640, 480) == pytest.approx((0.1, 0.1, 0.3, 0.3))
    assert normalized_box((-10.0, 400.0, 100.0, 200.0), 640, 480) == pytest.approx((0.0, 400 / 480, 90 / 640, 1.0))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:300, 200:300] = 255                      # a 100 x 200 (w x h) box
    face = cropped_face(frame, (200.0, 100.0, 100.0, 200.0))
    assert face.shape == (128, 128, 3)
    # scaled to fit (64 x 128), centred, zero-padded left and right
    assert face[:, :30].max() == 0 and face[:, -30:].max() == 0 and face[:, 40:88].min() == 255


def test_managed_node_clears_the_tracked_list_when_deactivated(tmp_path, collector):
    """fer_lifecycle_node: the REP-155 topics while active; on deactivate an empty tracked list, so a consumer
    (and a late one: transient local) is not left with faces nobody looks at."""
    ros_extras.require('hri_msgs.msg')
    from test_lifecycle_node import Lifecycle, _start
    consumer = Ros4HriConsumer(collector.node)
    node = _start(tmp_path, {'hri_output': True})
    life = Lifecycle(collector)
    try:
        assert life.transition('configure', node) and life.transition('activate', node)
        pub = collector.publisher(type(image_msg(0.0)), 'image')
        for _ in range(600):          # one face frame, then up to 0.1 s for the face to be listed, again
            pub.publish(image_msg(time.time(), 'cam_hri'))
            try:
                wait_until(lambda: any(m.ids for m in consumer.snapshot()[0]), 0.1, node, 'a tracked face')
                break
            except TimeoutError:
                continue
        else:
            pytest.fail('no face was ever listed on /humans/faces/tracked')
        assert life.transition('deactivate', node)
        collector.wait_for(lambda: not consumer.snapshot()[0][-1].ids, 20, node, 'an empty tracked list')
        assert life.transition('cleanup', node)
        collector.wait_for(lambda: collector.node.count_publishers('/humans/faces/tracked') == 0, 20, node,
                           'the tracked publisher to go with cleanup')
    finally:
        assert node.stop() == 0, node.output()
