"""What fer_node and fer_lifecycle_node share: parameters, pipeline, topics, worker, diagnostics.

FerRuntime is attached to an rclpy node (a plain Node or a LifecycleNode) and has the four steps of
a managed node; fer_node runs configure + activate at start, fer_lifecycle_node on transitions:

- ``configure``: validate the parameters, load the models (the Pipeline), create the publishers;
- ``activate``: subscribe to the camera, start the worker thread and the command timer;
- ``deactivate``: stop processing, publish HOLD;
- ``cleanup``: destroy the publishers, free the models.

Data path: the subscription callback only stores the newest frame with its arrival time
(LatestFrameSlot) and returns; one worker thread decodes, runs the pipeline and publishes; a timer
feeds the command mapper when frames stop (HOLD, heartbeats); a timer publishes /diagnostics.
Every received frame ends in exactly one count: processed, dropped (replaced in the slot), a decode
or pipeline error, or a stamp skip (fer_ros.hri.stamps.SKIP_REASONS).
"""
from __future__ import annotations

import collections
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fer_ros.core.types import Command
from fer_ros.hri.stamps import SKIP_REASONS, to_seconds, to_stamp
from fer_ros.io.image_codec import ImageDecodeError, decode_message
from fer_ros.io.overlay import draw_overlay
from fer_ros.msg import FaceExpressionArray, HriCommand
from fer_ros.ros import parameters
from fer_ros.ros.calibration import NeutralCalibrationServices
from fer_ros.ros.convert import bgr_to_image, command_to_msg, result_to_msg
from fer_ros.ros.hri_output import HriOutput
from fer_ros.ros.people_services import PeopleServices
from fer_ros.settings import params, params_files
from fer_ros.util.frame_slot import LatestFrameSlot
from fer_ros.util.processes import STATUS_NAME
from fer_ros.util.stats import RateMeter, StageTimes

LOG_THROTTLE_S = 5.0
ERROR_WINDOW_S = 10.0       # diagnostics are WARN while an error happened this recently
STALE_S = 2.0               # no frame processed for this long while frames were coming: WARN
SILENT_PUBLISHER_S = 3.0    # a matched camera that delivers nothing for this long: explain why
COUNTERS = ('processed', 'decode_errors', 'pipeline_errors') + SKIP_REASONS + ('clock_resets', 'commands',
                                                                             'scan_errors')
FRAME_OUTCOMES = ('processed', 'decode_errors', 'pipeline_errors') + SKIP_REASONS   # one per frame
LARGE_FRAME_HINT = (
    'frames larger than the DDS transport carries are lost without trace (Fast DDS defaults: a best-effort '
    'frame over its 512 KB shared-memory segment). Fix: set FASTDDS_DEFAULT_PROFILES_FILE (Humble/Jazzy: '
    'FASTRTPS_DEFAULT_PROFILES_FILE) to share/fer_ros/config/fastdds_large_images.xml for the camera and this '
    'node (the launch file does), or use reliability:=reliable, or image_transport:=compressed')


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
        self._lock = threading.Lock()                # pipeline state: worker vs tick timer vs params
        self._pipeline = None
        self._calibration = NeutralCalibrationServices(node, lambda: self._pipeline, self._lock,
                                                       lambda: self._values['neutral_calibration_s'])
        self._people = PeopleServices(node, lambda: self._pipeline, self._lock)
        self._sub = self._tick_timer = self._worker = None
        self._pubs: list = []
        self._hri: HriOutput | None = None
        self._slot = LatestFrameSlot()
        self._received_before = self._dropped_before = 0   # counts of the slots of earlier activations
        self._wake = threading.Event()               # wakes the worker's rate wait on a parameter change
        self._in_rate, self._out_rate = RateMeter(), RateMeter()
        self._stage_times = StageTimes()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._faces_last = 0
        self._recent_errors: collections.deque[float] = collections.deque(maxlen=1000)
        self._last_error = ''
        self._last_log: dict[str, float] = {}
        self._last_processed = self._last_received = None   # monotonic times
        self._subscribed_at = None
        self._current_command: Command | None = None
        self.state = 'unconfigured'
        self.reason = ''                             # why the last configure failed
        self._diag_pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        period = self._values['diagnostics_period_s']
        # Timers run on the steady clock: with use_sim_time and no /clock (yet) they must still fire.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._diag_timer = node.create_timer(period if isinstance(period, float) and period >= 0.1 else 1.0,
                                             self._publish_diagnostics, clock=self._steady)

    # ------------------------------------------------------------------ transitions
    def configure(self) -> None:
        """Validate parameters, load the models, create the publishers. Raises on failure (nothing kept)."""
        values = parameters.current_values(self.node) if self._lifecycle else self._values
        from fer_ros.backends import create_pipeline  # heavy imports after parameters are valid
        self._pipeline = create_pipeline(params.pipeline_config(values))
        for line in self._pipeline.placement:      # 'auto' says here, once per configure, what it picked and why
            self.node.get_logger().info(line)
        self._values = values
        people = self._pipeline.people
        if people.store_error:
            self.node.get_logger().error(f'{people.store_error} (the node runs; enrolment is refused)')
        for note in people.notes:
            self.node.get_logger().warning(f'people file: {note}')
        make = self.node.create_lifecycle_publisher if self._lifecycle else self.node.create_publisher
        self._expr_pub = make(FaceExpressionArray, 'expressions', 10)
        self._cmd_pub = make(HriCommand, 'command', 10)
        self._debug_pub = make(Image, 'debug_image', 1)
        self._pubs = [self._expr_pub, self._cmd_pub, self._debug_pub]
        self._hri = HriOutput(self.node, make) if values['hri_output'] else None   # REP-155 topics
        if self._hri is not None:
            self._pubs.append(self._hri.tracked_publisher)
        self.state, self.reason = 'inactive', ''

    def activate(self) -> None:
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self._values['qos_depth'],
            reliability=(ReliabilityPolicy.BEST_EFFORT if self._values['reliability'] == 'best_effort'
                         else ReliabilityPolicy.RELIABLE),
            durability=DurabilityPolicy.VOLATILE)
        msg_type, topic = (CompressedImage, 'image/compressed') if self._values['image_transport'] == 'compressed' \
            else (Image, 'image')
        self._received_before += self._slot.received      # keep the counts of earlier activations
        self._dropped_before += self._slot.dropped
        self._slot = LatestFrameSlot()
        self._worker = threading.Thread(target=self._work, name='fer_worker', daemon=True)
        self._worker.start()
        self._sub = self.node.create_subscription(msg_type, topic, self._on_image, qos)
        self._subscribed_at = time.monotonic()
        self._tick_timer = self.node.create_timer(1.0 / self._values['command_tick_hz'], self._on_tick,
                                                  clock=self._steady)
        self.state = 'active'
        self.node.get_logger().info(
            f"active: {self._sub.topic_name} ({self._values['image_transport']}, {self._values['reliability']}) "
            f"model={self._pipeline.spec.name} backend={self._pipeline.backend_name} "
            f"detector={self._pipeline.detector_name}")

    def deactivate(self) -> None:
        """Stop processing, then publish HOLD (the robot must not act on a node that no longer looks)."""
        self._stop_processing()
        with self._lock:
            self._pipeline.reset_commands()
        hold = Command(command='HOLD', priority=self._pipeline.command_config.priority('HOLD'))
        self._publish_commands([hold], self._timer_header())
        if self._hri is not None:
            self._hri.clear(self._timer_header())
        self.state = 'inactive'

    def cleanup(self) -> None:
        if self._sub is not None:
            self._stop_processing()
        destroy = getattr(self.node, 'destroy_lifecycle_publisher', None) if self._lifecycle else None
        if self._hri is not None:
            self._hri.close()
            self._hri = None
        for pub in self._pubs:
            (destroy or self.node.destroy_publisher)(pub)
        self._pubs = []
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None
        self.state = 'unconfigured'

    def close(self) -> None:
        """End of the process: stop the worker, then release the pipeline's threads and sessions (publishers go
        with the node) unless the worker is still inside it. Left to the interpreter's teardown, the exit
        aborted ('terminate called without an active exception', exit -6) on 2 of 8 runs of
        test_node_robustness's bomb test once the people networks were loaded; 0 of 10 with this."""
        if self._sub is not None:
            self._stop_processing()
        if self._pipeline is not None and not (self._worker is not None and self._worker.is_alive()):
            self._pipeline.close()
            self._pipeline = None

    def _stop_processing(self) -> None:
        self.node.destroy_subscription(self._sub)
        self.node.destroy_timer(self._tick_timer)
        self._sub = self._tick_timer = None
        self._slot.close()
        self._wake.set()
        self._worker.join(timeout=5.0)
        # a frame still waiting in the slot is counted as dropped, so the counts keep adding up
        self._slot.discard()

    # ------------------------------------------------------------------ input
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self._last_received = now
        self._in_rate.mark(now)
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
                self._report('pipeline_errors', f'{self._topic()}: {self._describe(msg)}: pipeline failed: '
                             f'{type(exc).__name__}: {str(exc).strip()}')

    def _process(self, msg, arrival: float) -> None:
        try:
            bgr = decode_message(msg, self._values['max_image_pixels'])
        except ImageDecodeError as exc:
            self._report('decode_errors', f'{self._topic()}: bad image: {exc}')
            return
        stamp = to_seconds(msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            result = self._pipeline.process(bgr, stamp, camera=msg.header.frame_id, arrival=arrival)
        if result.scan_error:     # not a frame outcome: the frame itself was processed (ROI path)
            self._report('scan_errors', f'{self._topic()}: {result.scan_error}')
        if result.skipped:
            self._report(result.skipped, f'{self._topic()}: {self._describe(msg)}: skipped ({result.skipped}, '
                         'see fer_ros/hri/stamps.py)')
            return
        if result.new_timeline:
            self._counts['clock_resets'] += 1
            self._log_throttled('clock_resets', f'{self._topic()}: camera {msg.header.frame_id!r} clock jumped '
                                f'to {stamp:.3f}: its tracks were reset (the current command is kept)', warn=True)
        self._counts['processed'] += 1
        self._last_processed = time.monotonic()
        self._faces_last = len(result.faces)
        self._stage_times.add(result.timing_ms)
        self._out_rate.mark(self._last_processed)
        self._expr_pub.publish(result_to_msg(result, msg.header, bgr.shape[1], bgr.shape[0]))
        self._publish_commands(result.commands, msg.header)
        if self._hri is not None:
            self._hri.publish(result.faces, msg.header, bgr)
        if self._values['publish_debug_image'] and self._debug_pub.get_subscription_count() > 0:
            self._debug_pub.publish(bgr_to_image(draw_overlay(bgr, result.faces, self._current_command),
                                                 msg.header))

    def _publish_commands(self, commands, header) -> None:
        for command in commands:
            self._current_command = command
            self._counts['commands'] += 1
            self._cmd_pub.publish(command_to_msg(command, header))

    def _timer_header(self) -> Header:
        """Header of timer-driven commands: the clock of the camera they follow (saturated to int32)."""
        clock = self._pipeline.camera_clock(time.monotonic()) if self._pipeline else None
        if clock is None:
            return Header(stamp=self.node.get_clock().now().to_msg())
        header = Header(frame_id=clock[0])
        header.stamp.sec, header.stamp.nanosec = to_stamp(clock[1])
        return header

    def _on_tick(self) -> None:
        """HOLD / heartbeats when frames stop arriving."""
        # Never make the executor wait for a frame being processed: that frame updates the commands anyway.
        if not self._lock.acquire(blocking=False):
            return
        try:
            commands = self._pipeline.tick(time.monotonic())
            header = self._timer_header() if commands else None
        finally:
            self._lock.release()
        if commands:
            self._publish_commands(commands, header)

    # ------------------------------------------------------------------ errors and diagnostics
    def _topic(self) -> str:
        return self._sub.topic_name if self._sub is not None else '(image)'

    @staticmethod
    def _describe(msg) -> str:
        size = f'{msg.width}x{msg.height} {msg.encoding}' if hasattr(msg, 'encoding') else f'{msg.format}'
        stamp = msg.header.stamp
        return f'frame {size} from {msg.header.frame_id!r} stamped {stamp.sec}.{stamp.nanosec:09d}'

    def _report(self, counter: str, message: str) -> None:
        """Count a bad input or failure, keep it for diagnostics, log it at most every 5 s per kind."""
        self._counts[counter] += 1
        self._last_error = message
        self._recent_errors.append(time.monotonic())
        self._log_throttled(counter, f'{message} ({self._counts[counter]} so far)')

    def _log_throttled(self, kind: str, message: str, warn: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_log.get(kind, -1e9) >= LOG_THROTTLE_S:
            self._last_log[kind] = now
            if warn:      # rclpy fixes one severity per call site: two calls, not one
                self.node.get_logger().warning(message)
            else:
                self.node.get_logger().error(message)

    def diagnostics_status(self) -> DiagnosticStatus:
        now = time.monotonic()
        recent = sum(1 for t in self._recent_errors if now - t <= ERROR_WINDOW_S)
        p = self._pipeline
        values = {
            'state': self.state,
            'input_rate_hz': f'{self._in_rate.rate(now):.2f}',
            'processed_rate_hz': f'{self._out_rate.rate(now):.2f}',
            'frames_received': str(self._slot_received()),
            'frames_processed': str(self._counts['processed']),
            'frames_dropped': str(self._slot_dropped()),
            'faces': str(self._faces_last),
            'backend': p.backend_name if p else '',
            'model': p.spec.name if p else '',
            'detector': p.detector_name if p else '',
            'current_command': self._current_command.command if self._current_command else '',
            f'errors_last_{ERROR_WINDOW_S:g}s': str(recent),
            'last_error': self._last_error,
        }
        values.update({k: str(v) for k, v in self._counts.items() if k != 'processed'})
        values.update(self._calibration.diagnostic_values())
        values.update(self._people.diagnostic_values())
        for stage, pct in self._stage_times.summary().items():
            for name, ms in pct.items():
                values[f'latency_{stage}_{name}_ms'] = f'{ms:.2f}'
        level, text = DiagnosticStatus.OK, self.state
        if self.state == 'unconfigured':
            level, text = DiagnosticStatus.ERROR, f'unconfigured: {self.reason}' if self.reason else 'unconfigured'
        elif self.state == 'active':
            store_error = p.people.store_error if p else ''
            if store_error:     # enrolment refused, and with command_authority enrolled nobody commands
                level, text = DiagnosticStatus.WARN, f'people file refused: {store_error}'
            if recent:
                level, text = DiagnosticStatus.WARN, f'{recent} bad frames/errors in the last {ERROR_WINDOW_S:g} s; ' \
                    f'last: {self._last_error}'
            if self._last_received is not None and now - self._last_received < STALE_S and \
                    self._last_processed is not None and now - self._last_processed > STALE_S:
                level, text = DiagnosticStatus.WARN, f'frames arrive but none was processed for more than {STALE_S:g} s'
            silent_since = self._last_received if self._last_received is not None else self._subscribed_at
            publishers = self._sub.get_publisher_count() if self._sub is not None else 0
            if publishers and now - silent_since > SILENT_PUBLISHER_S:
                level = DiagnosticStatus.WARN
                text = (f'{publishers} publisher(s) matched on {self._topic()} but no frame arrived for '
                        f'{now - silent_since:.0f} s: {LARGE_FRAME_HINT}')
        return DiagnosticStatus(level=level, name=f'{self.node.get_name()}: {STATUS_NAME}',
                                message=text, hardware_id=values['backend'],
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _slot_received(self) -> int:
        return self._received_before + self._slot.received

    def _slot_dropped(self) -> int:
        return self._dropped_before + self._slot.dropped

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
        with self._lock:
            if detector_config is not None and detector_config != params.detector_config(self._values):
                self._pipeline.set_detector_config(detector_config)
            self._values = updated
        self._wake.set()
        return SetParametersResult(successful=True)
