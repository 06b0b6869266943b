"""What fer_node and fer_lifecycle_node share: parameters, pipeline, topics, worker, diagnostics.

FerRuntime is attached to an rclpy node (a plain Node or a LifecycleNode) and has the four steps of
a managed node; fer_node runs configure + activate at start, fer_lifecycle_node on transitions:

- ``configure``: validate the parameters, load the models (the Pipeline, refused when it could not
  STOP), warm every session up, create the publishers;
- ``activate``: publish HOLD (nothing seen yet), subscribe to the camera, start the frame worker and
  the command clock;
- ``deactivate`` (and ``finish``, the end of the process): publish the final HOLD and wait until the
  command's subscribers acknowledged it, stop processing, forget tracks, timelines, evidence and any
  calibration in progress. A frame worker that does not stop (inference hung) fails the transition
  and keeps the models;
- ``cleanup``: destroy the publishers, free the models.

Data path: the subscription callback only stores the newest frame with its arrival time
(LatestFrameSlot) and returns; one worker thread decodes, runs the pipeline and publishes the frame's
outputs (``_publish_frame``: the place to add another output of a processed frame); commands go out
only through the command channel (fer_ros.ros.command_channel), from inside the pipeline's command
section (fer_ros.hri.decisions), whether a frame, the command clock (its own thread, which no
inference, parameter change or service call can block) or a transition decided them.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fer_ros.core.types import FrameResult
from fer_ros.hri.stamps import to_seconds, to_stamp
from fer_ros.io.image_codec import ImageDecodeError, decode_message
from fer_ros.io.overlay import draw_overlay
from fer_ros.msg import FaceExpressionArray
from fer_ros.ros import parameters
from fer_ros.ros.calibration import NeutralCalibrationServices
from fer_ros.ros.command_channel import CommandChannel, CommandTicker
from fer_ros.ros.convert import bgr_to_image, result_to_msg
from fer_ros.ros.health import ERROR_WINDOW_S, NodeHealth
from fer_ros.ros.hri_output import HriOutput
from fer_ros.ros.people_services import PeopleServices
from fer_ros.ros.pipeline_services import BUSY, BUSY_TIMEOUT_S
from fer_ros.settings import params, params_files
from fer_ros.util.frame_slot import LatestFrameSlot
from fer_ros.util.processes import STATUS_NAME

if TYPE_CHECKING:
    from fer_ros.pipeline import Pipeline

STALE_S = 2.0               # no frame processed for this long while frames were coming: WARN
SILENT_PUBLISHER_S = 3.0    # a matched camera that delivers nothing for this long: explain why
JOIN_TIMEOUT_S = 5.0        # a frame worker that has not stopped by then is stuck (inference hung)
ACK_TIMEOUT_S = 1.0         # how long a transition waits for the final HOLD to be acknowledged
LARGE_FRAME_HINT = (
    'frames larger than the DDS transport carries are lost without trace (Fast DDS defaults: a best-effort '
    'frame over its 512 KB shared-memory segment). Fix: set FASTDDS_DEFAULT_PROFILES_FILE (Humble/Jazzy: '
    'FASTRTPS_DEFAULT_PROFILES_FILE) to share/fer_ros/config/fastdds_large_images.xml for the camera and this '
    'node (the launch file does), or use reliability:=reliable, or image_transport:=compressed')


class WorkerStuck(RuntimeError):
    """The frame worker did not stop within JOIN_TIMEOUT_S: inference hangs. The models stay allocated."""


class FerRuntime:
    """The node's guts, on ``node``. lifecycle: the node is a LifecycleNode (its publishers are
    lifecycle publishers; parameters are validated at configure, not at construction).

    Raises (constructor): ParameterError for a parameter given at start that is unknown, misplaced in
    a params file, or (plain node) invalid.
    """

    def __init__(self, node, lifecycle: bool = False, files: list[str] | None = None) -> None:
        self.node = node
        self._lifecycle = lifecycle
        params_files.check_params_files(files or [], node.get_fully_qualified_name())
        self._values = parameters.declare(node, validate=not lifecycle, enforce_read_only=not lifecycle)
        params_files.check_overrides(node)
        node.add_on_set_parameters_callback(self._on_set_parameters)
        self._lock = threading.Lock()                # pipeline state: frame worker vs parameters vs services
        self._pipeline: Pipeline | None = None
        self._calibration = NeutralCalibrationServices(node, lambda: self._pipeline, self._lock,
                                                       lambda: self._values['neutral_calibration_s'])
        self._people = PeopleServices(node, lambda: self._pipeline, self._lock)
        self._sub = None
        self._worker: threading.Thread | None = None
        self._ticker: CommandTicker | None = None
        self._channel: CommandChannel | None = None
        self._pubs: list = []
        self._hri: HriOutput | None = None
        self._slot = LatestFrameSlot()
        self._received_before = self._dropped_before = 0   # counts of the slots of earlier activations
        self._wake = threading.Event()               # wakes the worker's rate wait on a parameter change
        self.health = NodeHealth(node.get_logger())
        self._subscribed_at: float | None = None
        self.state = 'unconfigured'
        self.reason = ''                             # why the last configure (or deactivate) failed
        self._diag_pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        period = self._values['diagnostics_period_s']
        # Timers run on the steady clock: with use_sim_time and no /clock (yet) they must still fire.
        self._diag_timer = node.create_timer(period if isinstance(period, float) and period >= 0.1 else 1.0,
                                             self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ------------------------------------------------------------------ transitions
    def configure(self) -> None:
        """Validate parameters, load and warm up the models, create the publishers. Raises on failure
        (nothing kept)."""
        values = parameters.current_values(self.node) if self._lifecycle else self._values
        from fer_ros.backends import create_pipeline  # heavy imports after parameters are valid
        pipeline = create_pipeline(params.pipeline_config(values))
        try:
            warm = pipeline.warm_up()
        except Exception:
            pipeline.close()
            raise
        self._pipeline, self._values = pipeline, values
        for line in pipeline.placement:      # 'auto' says here, once per configure, what it picked and why
            self.node.get_logger().info(line)
        if pipeline.people.store_error:
            self.node.get_logger().error(f'{pipeline.people.store_error} (the node runs; enrolment is refused)')
        for note in pipeline.people.notes:
            self.node.get_logger().warning(f'people file: {note}')
        make = self.node.create_lifecycle_publisher if self._lifecycle else self.node.create_publisher
        self._expr_pub = make(FaceExpressionArray, 'expressions', 10)
        self._channel = channel = CommandChannel(make, pipeline.command_config.heartbeat_period_s,
                                                 pipeline.command_config.clock_reset_s)
        self._debug_pub = make(Image, 'debug_image', 1)
        self._pubs = [self._expr_pub, channel.publisher, self._debug_pub]
        self._hri = HriOutput(self.node, make) if values['hri_output'] else None   # REP-155 topics
        if self._hri is not None:
            self._pubs.append(self._hri.tracked_publisher)
        self.state, self.reason = 'inactive', ''
        self.node.get_logger().info('warmed up: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in warm.items()))

    def activate(self) -> None:
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self._values['qos_depth'],
            reliability=(ReliabilityPolicy.BEST_EFFORT if self._values['reliability'] == 'best_effort'
                         else ReliabilityPolicy.RELIABLE),
            durability=DurabilityPolicy.VOLATILE)
        msg_type, topic = (CompressedImage, 'image/compressed') if self._values['image_transport'] == 'compressed' \
            else (Image, 'image')
        pipeline, channel = self._configured()
        channel.open()
        # The command in force from the first moment: nobody has been seen yet (latched for late joiners).
        pipeline.hold(time.monotonic(), publish=self._publish_timed)
        self._received_before += self._slot.received      # keep the counts of earlier activations
        self._dropped_before += self._slot.dropped
        self._slot = LatestFrameSlot()
        self._worker = threading.Thread(target=self._work, name='fer_worker', daemon=True)
        self._worker.start()
        self._sub = sub = self.node.create_subscription(msg_type, topic, self._on_image, qos)
        self._subscribed_at = time.monotonic()
        self._ticker = CommandTicker(self._on_tick, 1.0 / self._values['command_tick_hz'],
                                     lambda exc: self.health.report('command_clock_errors',
                                                                    f'command clock: {type(exc).__name__}: {exc}'))
        self.state = 'active'
        self.node.get_logger().info(
            f"active: {sub.topic_name} ({self._values['image_transport']}, {self._values['reliability']}) "
            f"model={pipeline.spec.name} backend={pipeline.backend_name} detector={pipeline.detector_name}")

    def deactivate(self) -> None:
        """The final HOLD (acknowledged or timed out), then stop processing and forget the scene.

        Raises:
            WorkerStuck: the frame worker did not stop (HOLD is out, processing is not: the transition
                fails and may be retried; the models stay allocated)."""
        if self._sub is not None:
            self.node.destroy_subscription(self._sub)
            self._sub = None
            if self._ticker is not None:
                self._ticker.stop()
            self._final_hold()
            self._slot.close()
            self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=JOIN_TIMEOUT_S)
            if self._worker.is_alive():
                self.reason = f'the frame worker did not stop within {JOIN_TIMEOUT_S:g} s (inference hangs)'
                raise WorkerStuck(self.reason)
            self._worker = None
            self._slot.discard()           # a frame still waiting counts as dropped: the counts keep adding up
        with self._lock:
            self._configured()[0].reset(keep_command=False)     # tracks, timelines, evidence, calibration
        if self._hri is not None:
            self._hri.clear(self._timer_header())
        self.state, self.reason = 'inactive', ''

    def cleanup(self) -> None:
        """Destroy the publishers and free the models (refused while a stuck worker may still use them)."""
        if self._worker is not None:
            self.deactivate()
        destroy = getattr(self.node, 'destroy_lifecycle_publisher', None) if self._lifecycle else None
        if self._hri is not None:
            self._hri.close()
            self._hri = None
        for pub in self._pubs:
            (destroy or self.node.destroy_publisher)(pub)
        self._pubs, self._channel = [], None
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        self.state = 'unconfigured'

    def finish(self) -> None:
        """End of the process (SIGINT, SIGTERM, a lifecycle shutdown): the final HOLD (acknowledged, or
        ACK_TIMEOUT_S) if active, then the models and publishers freed. A stuck worker is reported and
        left to die with the process: the models are not freed under it."""
        try:
            if self.state == 'active' or self._worker is not None:
                self.deactivate()
            self.cleanup()
        except WorkerStuck as exc:
            self.node.get_logger().error(f'at shutdown: {exc}')

    def _final_hold(self) -> None:
        """HOLD as the last word of this activation, then wait for its acknowledgement."""
        pipeline, channel = self._configured()
        pipeline.hold(time.monotonic(), final=True, publish=self._publish_timed)
        channel.close()          # a frame still in flight may decide, but publishes nothing more
        if not channel.wait_acknowledged(ACK_TIMEOUT_S):
            self.node.get_logger().warning(f'the final HOLD was not acknowledged by every subscriber of '
                                           f'{channel.topic} within {ACK_TIMEOUT_S:g} s')

    def _configured(self) -> tuple[Pipeline, CommandChannel]:
        """The pipeline and command channel, which exist from configure to cleanup: the only time the
        callers (transitions, the worker, the command clock) run."""
        if self._pipeline is None or self._channel is None:
            raise RuntimeError(f'{self.node.get_name()} is not configured (state {self.state})')
        return self._pipeline, self._channel

    # ------------------------------------------------------------------ input
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self.health.received(now)
        self._slot.put((msg, now))

    def _work(self) -> None:
        slot, last_start = self._slot, -1e9
        while not slot.closed:
            rate = self._values['max_rate_hz']
            wait = last_start + 1.0 / rate - time.monotonic() if rate > 0 else 0.0
            if wait > 0:      # newer frames keep replacing the slot; a rate change wakes us at once
                self._wake.wait(min(wait, 0.5))
                self._wake.clear()
                continue
            item = slot.take(timeout=0.2)
            if item is None:
                continue
            last_start = time.monotonic()
            msg, arrival = item
            try:
                self._process(msg, arrival)
            except Exception as exc:  # a bug must not kill the worker: report and go on
                self.health.report('pipeline_errors', f'{self._topic()}: {self._describe(msg)}: pipeline failed: '
                                   f'{type(exc).__name__}: {str(exc).strip()}')

    def _process(self, msg, arrival: float) -> None:
        try:
            bgr = decode_message(msg, self._values['max_image_pixels'])
        except ImageDecodeError as exc:
            self.health.report('decode_errors', f'{self._topic()}: bad image: {exc}')
            return
        stamp = to_seconds(msg.header.stamp.sec, msg.header.stamp.nanosec)
        pipeline, channel = self._configured()
        with self._lock:
            result = pipeline.process(bgr, stamp, camera=msg.header.frame_id, arrival=arrival,
                                      publish=lambda commands: channel.publish(commands, msg.header))
        if result.scan_error:     # not a frame outcome: the frame itself was processed (ROI path)
            self.health.report('scan_errors', f'{self._topic()}: {result.scan_error}')
        if result.skipped:
            self.health.report(result.skipped, f'{self._topic()}: {self._describe(msg)}: skipped '
                               f'({result.skipped}, see fer_ros/hri/stamps.py)')
            return
        if result.new_timeline:
            self.health.count('clock_resets')
            self.health.log_throttled('clock_resets', f'{self._topic()}: camera {msg.header.frame_id!r} clock '
                                      f'jumped to {stamp:.3f}: its tracks were reset (the current command is kept)',
                                      warn=True)
        self.health.processed(len(result.faces), result.timing_ms)
        self._publish_frame(result, msg.header, bgr)

    def _publish_frame(self, result: FrameResult, header, bgr) -> None:
        """The outputs of one processed frame (its commands went out already, through the channel): the
        expressions, the ROS4HRI topics (hri_output), the debug image. Another output is one more call here."""
        self._expr_pub.publish(result_to_msg(result, header, bgr.shape[1], bgr.shape[0]))
        if self._hri is not None:
            self._hri.publish(result.faces, header, bgr)
        if self._values['publish_debug_image'] and self._debug_pub.get_subscription_count() > 0:
            overlay = draw_overlay(bgr, result.faces, self._configured()[1].current)
            self._debug_pub.publish(bgr_to_image(overlay, header))

    # ------------------------------------------------------------------ the command clock
    def _on_tick(self) -> None:
        """HOLD and heartbeats; on the command clock's own thread, never waiting for inference."""
        self._configured()[0].tick(time.monotonic(), publish=self._publish_timed)

    def _publish_timed(self, commands) -> None:
        """Commands the clock or a transition decided (called inside the pipeline's command section)."""
        self._configured()[1].publish(commands, self._timer_header())

    def _timer_header(self) -> Header:
        """Header of clock-driven commands: the clock of the camera they follow (saturated to int32)."""
        clock = self._pipeline.camera_clock(time.monotonic()) if self._pipeline else None
        if clock is None:
            return Header(stamp=self.node.get_clock().now().to_msg())
        header = Header(frame_id=clock[0])
        header.stamp.sec, header.stamp.nanosec = to_stamp(clock[1])
        return header

    # ------------------------------------------------------------------ diagnostics
    def _topic(self) -> str:
        return self._sub.topic_name if self._sub is not None else '(image)'

    @staticmethod
    def _describe(msg) -> str:
        size = f'{msg.width}x{msg.height} {msg.encoding}' if hasattr(msg, 'encoding') else f'{msg.format}'
        stamp = msg.header.stamp
        return f'frame {size} from {msg.header.frame_id!r} stamped {stamp.sec}.{stamp.nanosec:09d}'

    def diagnostics_status(self) -> DiagnosticStatus:
        now = time.monotonic()
        counts, recent, last_error = self.health.snapshot(now)
        p, channel, health = self._pipeline, self._channel, self.health
        stalled = p.stalled_for(now) if p is not None and self.state == 'active' else 0.0
        current = channel.current if channel is not None else None
        values = {
            'state': self.state,
            'input_rate_hz': f'{health.in_rate.rate(now):.2f}',
            'processed_rate_hz': f'{health.out_rate.rate(now):.2f}',
            'frames_received': str(self._received_before + self._slot.received),
            'frames_processed': str(counts['processed']),
            'frames_dropped': str(self._dropped_before + self._slot.dropped),
            'faces': str(health.faces_last),
            'backend': p.backend_name if p else '',
            'model': p.spec.name if p else '',
            'detector': p.detector_name if p else '',
            'current_command': current.command if current else '',
            'command_subscribers': str(channel.subscriber_count()) if channel is not None else '0',
            'command_deadline_s': f'{channel.deadline_s:g}' if channel is not None else '',
            'processing_stalled_s': f'{stalled:.1f}',
            f'errors_last_{ERROR_WINDOW_S:g}s': str(recent),
            'last_error': last_error,
        }
        values.update({k: str(v) for k, v in counts.items() if k != 'processed'})
        values.update(self._calibration.diagnostic_values())
        values.update(self._people.diagnostic_values())
        for stage, pct in health.stage_times.summary().items():
            for name, ms in pct.items():
                values[f'latency_{stage}_{name}_ms'] = f'{ms:.2f}'
        level, text = self._level(now, recent, last_error, stalled)
        return DiagnosticStatus(level=level, name=f'{self.node.get_name()}: {STATUS_NAME}',
                                message=text, hardware_id=values['backend'],
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _level(self, now: float, recent: int, last_error: str, stalled: float) -> tuple[bytes, str]:
        """The status level and message, the most serious condition first."""
        if self.state == 'unconfigured':
            return DiagnosticStatus.ERROR, f'unconfigured: {self.reason}' if self.reason else 'unconfigured'
        if self.reason:                                # a transition failed (a stuck worker)
            return DiagnosticStatus.ERROR, self.reason
        if self.state != 'active':
            return DiagnosticStatus.OK, self.state
        if stalled > 0:
            return DiagnosticStatus.ERROR, (f'a frame has been in processing for {stalled:.1f} s beyond the '
                                            'stall bound (inference hangs?): HOLD is published')
        health = self.health
        silent_since = health.last_received if health.last_received is not None else self._subscribed_at
        publishers = self._sub.get_publisher_count() if self._sub is not None else 0
        if publishers and silent_since is not None and now - silent_since > SILENT_PUBLISHER_S:
            return DiagnosticStatus.WARN, (f'{publishers} publisher(s) matched on {self._topic()} but no frame '
                                           f'arrived for {now - silent_since:.0f} s: {LARGE_FRAME_HINT}')
        if health.last_received is not None and now - health.last_received < STALE_S and \
                health.last_processed is not None and now - health.last_processed > STALE_S:
            return DiagnosticStatus.WARN, f'frames arrive but none was processed for more than {STALE_S:g} s'
        if recent:
            return DiagnosticStatus.WARN, f'{recent} bad frames/errors in the last {ERROR_WINDOW_S:g} s; ' \
                f'last: {last_error}'
        store_error = self._pipeline.people.store_error if self._pipeline is not None else ''
        if store_error:     # enrolment refused, and with command_authority enrolled nobody commands
            return DiagnosticStatus.WARN, f'people file refused: {store_error}'
        return DiagnosticStatus.OK, self.state

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=self.node.get_clock().now().to_msg()),
                                               status=[self.diagnostics_status()]))

    # ------------------------------------------------------------------ parameters at run time
    def _on_set_parameters(self, changes) -> SetParametersResult:
        updated = dict(self._values)
        try:
            for change in changes:
                if params.is_ros_parameter(change.name):      # use_sim_time & co.: rclpy's own
                    continue
                definition = params.PARAMETERS_BY_NAME.get(change.name)
                if definition is None:
                    return SetParametersResult(successful=False, reason=params.unknown_parameter_message(change.name))
                if definition.read_only and self._pipeline is not None:
                    return SetParametersResult(successful=False, reason=f'parameter {change.name!r} is read at '
                                               'configure; it cannot change while configured')
                updated[change.name] = definition.validate(change.value)
            detector_config = params.detector_config(updated) if self._pipeline is not None else None
        except ValueError as exc:   # ParameterError, or a detector config rejecting the combination
            return SetParametersResult(successful=False, reason=str(exc))
        # The executor must never wait on a stuck inference: refuse rather than block.
        if not self._lock.acquire(timeout=BUSY_TIMEOUT_S):
            return SetParametersResult(successful=False, reason=BUSY)
        try:
            pipeline = self._pipeline
            if pipeline and detector_config is not None and detector_config != params.detector_config(self._values):
                pipeline.set_detector_config(detector_config)
            self._values = updated
        finally:
            self._lock.release()
        self._wake.set()
        return SetParametersResult(successful=True)
