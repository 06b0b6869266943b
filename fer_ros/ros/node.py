"""fer_node: camera images in; FaceExpressionArray, HriCommand, debug image and diagnostics out.

Thin wrapper around the ROS-free fer_ros.core.pipeline.Pipeline:
- the subscription callback only stores the newest frame (LatestFrameSlot) and returns, so the
  executor never blocks; frames replaced before processing are counted as dropped;
- one worker thread decodes, runs the pipeline and publishes;
- a timer feeds the command mapper when frames stop arriving (HOLD, heartbeats);
- a timer publishes /diagnostics (rates, per-stage latency percentiles, drops, errors).
Works on Humble, Jazzy and Kilted (only long-standing rclpy API is used).
"""
from __future__ import annotations

import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fer_ros.core.frame_slot import LatestFrameSlot
from fer_ros.core.image_codec import ImageDecodeError
from fer_ros.core.overlay import draw_overlay
from fer_ros.core.stats import RateMeter, StageTimes
from fer_ros.msg import FaceExpressionArray, HriCommand
from fer_ros.ros import params
from fer_ros.ros.calibration import NeutralCalibrationServices
from fer_ros.ros.compat import SHUTDOWN_EXCEPTIONS
from fer_ros.ros.convert import bgr_to_image, command_to_msg, image_to_bgr, result_to_msg

LOG_THROTTLE_S = 5.0


def _stamp_to_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _s_to_stamp(seconds: float, template):
    sec = int(seconds // 1)
    template.sec, template.nanosec = sec, int(round((seconds - sec) * 1e9)) % 1_000_000_000
    return template


class FerNode(Node):
    def __init__(self) -> None:
        super().__init__(params.NODE_NAME)
        self._values = params.declare(self)          # ParameterError -> caught in main()
        from fer_ros.backends import create_pipeline   # heavy imports after parameters are valid
        self._pipeline = create_pipeline(params.pipeline_config(self._values))
        self._lock = threading.Lock()                # pipeline state: worker vs tick timer vs params

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self._values['qos_depth'],
            reliability=(ReliabilityPolicy.BEST_EFFORT if self._values['reliability'] == 'best_effort'
                         else ReliabilityPolicy.RELIABLE),
            durability=DurabilityPolicy.VOLATILE)
        if self._values['image_transport'] == 'compressed':
            self._sub = self.create_subscription(CompressedImage, 'image/compressed', self._on_image, qos)
        else:
            self._sub = self.create_subscription(Image, 'image', self._on_image, qos)
        self._expr_pub = self.create_publisher(FaceExpressionArray, 'expressions', 10)
        self._cmd_pub = self.create_publisher(HriCommand, 'command', 10)
        self._debug_pub = self.create_publisher(Image, 'debug_image', 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        self._slot = LatestFrameSlot()
        self._in_rate, self._out_rate = RateMeter(), RateMeter()
        self._stage_times = StageTimes()
        self._counts = {'processed': 0, 'decode_errors': 0, 'pipeline_errors': 0, 'out_of_order': 0,
                        'clock_resets': 0, 'faces_last': 0, 'commands': 0}
        self._last_error = ''
        self._last_log: dict[str, float] = {}
        self._last_stamp: float | None = None        # image clock of the newest processed frame
        self._last_mono = 0.0                         # monotonic time it was processed
        self._last_header = Header()
        self._current_command = None

        self._calibration = NeutralCalibrationServices(self, lambda: self._pipeline, self._lock,
                                                       lambda: self._values['neutral_calibration_s'])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(1.0 / self._values['command_tick_hz'], self._on_tick)
        self.create_timer(self._values['diagnostics_period_s'], self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='fer_worker', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {self._sub.topic_name} ({self._values['image_transport']}, {self._values['reliability']}) "
            f"model={self._pipeline.spec.name} backend={self._pipeline.backend_name} "
            f"detector={self._pipeline.detector_name}")

    # ------------------------------------------------------------------ input
    def _on_image(self, msg) -> None:
        self._in_rate.mark(time.monotonic())
        self._slot.put(msg)

    def _work(self) -> None:
        next_allowed = 0.0
        while not self._slot.closed:
            max_rate = self._values['max_rate_hz']
            if max_rate > 0 and time.monotonic() < next_allowed:
                time.sleep(max(0.0, next_allowed - time.monotonic()))   # newer frames keep replacing the slot
            msg = self._slot.take(timeout=0.2)
            if msg is None:
                continue
            next_allowed = time.monotonic() + (1.0 / max_rate if max_rate > 0 else 0.0)
            try:
                self._process(msg)
            except Exception as exc:  # a bug must not kill the worker: report and go on
                self._report('pipeline_errors', f'pipeline failed on a frame: {type(exc).__name__}: {exc}')

    def _process(self, msg) -> None:
        try:
            bgr = image_to_bgr(msg, self._values['max_image_pixels'])
        except ImageDecodeError as exc:
            self._report('decode_errors', f'{self._sub.topic_name}: bad image: {exc}')
            return
        stamp = _stamp_to_s(msg.header.stamp)
        with self._lock:
            if self._last_stamp is not None and stamp < self._last_stamp:
                # A larger jump back than commands.yaml's clock_reset_s is a new timeline (bag loop,
                # camera restart): reset tracks (a latched command is kept). A smaller step back is an
                # out-of-order frame: skipped, so tracker and command timers never run backwards.
                if self._last_stamp - stamp > self._pipeline.command_config.clock_reset_s:
                    self._counts['clock_resets'] += 1
                    self.get_logger().warning(f'image clock jumped back {self._last_stamp - stamp:.2f} s: '
                                              'resetting tracks (the current command is kept)')
                    self._pipeline.reset()
                else:
                    self._report('out_of_order', f'{self._sub.topic_name}: frame stamped {stamp:.3f} is older '
                                 f'than the last processed {self._last_stamp:.3f}; skipped')
                    return
            result = self._pipeline.process(bgr, stamp)
            self._last_stamp, self._last_mono, self._last_header = stamp, time.monotonic(), msg.header
        self._counts['processed'] += 1
        self._counts['faces_last'] = len(result.faces)
        self._stage_times.add(result.timing_ms)
        self._out_rate.mark(time.monotonic())
        self._expr_pub.publish(result_to_msg(result, msg.header, bgr.shape[1], bgr.shape[0]))
        self._publish_commands(result.commands, msg.header)
        if self._values['publish_debug_image'] and self._debug_pub.get_subscription_count() > 0:
            self._debug_pub.publish(bgr_to_image(draw_overlay(bgr, result.faces, self._current_command),
                                                 msg.header))

    def _publish_commands(self, commands, header) -> None:
        for command in commands:
            self._current_command = command
            self._counts['commands'] += 1
            self._cmd_pub.publish(command_to_msg(command, header))

    def _on_tick(self) -> None:
        """HOLD / heartbeat when frames stop: advance the image clock by the time since the last frame."""
        # Never make the executor wait for a frame being processed: the worker is updating the
        # command mapper right now anyway, so this tick can be skipped.
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._last_stamp is None:
                now = _stamp_to_s(self.get_clock().now().to_msg())
                header = Header(stamp=self.get_clock().now().to_msg())
            else:
                now = self._last_stamp + (time.monotonic() - self._last_mono)
                header = Header(stamp=_s_to_stamp(now, self.get_clock().now().to_msg()),
                                frame_id=self._last_header.frame_id)
            commands = self._pipeline.tick(now)
        finally:
            self._lock.release()
        self._publish_commands(commands, header)

    # ------------------------------------------------------------------ errors and diagnostics
    def _report(self, counter: str, message: str) -> None:
        """Count a bad input or failure, keep it for diagnostics, log it at most every 5 s per kind."""
        self._counts[counter] += 1
        self._last_error = message
        now = time.monotonic()
        if now - self._last_log.get(counter, -1e9) >= LOG_THROTTLE_S:
            self._last_log[counter] = now
            self.get_logger().error(f'{message} ({self._counts[counter]} so far)')

    def diagnostics_status(self) -> DiagnosticStatus:
        now = time.monotonic()
        errors = sum(self._counts[k] for k in ('decode_errors', 'pipeline_errors', 'out_of_order'))
        values = {
            'input_rate_hz': f'{self._in_rate.rate(now):.2f}',
            'processed_rate_hz': f'{self._out_rate.rate(now):.2f}',
            'frames_received': str(self._slot.received),
            'frames_processed': str(self._counts['processed']),
            'frames_dropped': str(self._slot.dropped),
            'faces': str(self._counts['faces_last']),
            'backend': self._pipeline.backend_name,
            'model': self._pipeline.spec.name,
            'detector': self._pipeline.detector_name,
            'current_command': self._current_command.command if self._current_command else '',
            'last_error': self._last_error,
        }
        values.update({k: str(v) for k, v in self._counts.items() if k not in ('processed', 'faces_last')})
        values.update(self._calibration.diagnostic_values())
        for stage, pct in self._stage_times.summary().items():
            for name, ms in pct.items():
                values[f'latency_{stage}_{name}_ms'] = f'{ms:.2f}'
        stale = self._last_stamp is not None and now - self._last_mono > 2.0
        level, text = DiagnosticStatus.OK, 'running'
        if errors:
            level, text = DiagnosticStatus.WARN, f'{errors} bad frames/errors; last: {self._last_error}'
        if stale:
            level, text = DiagnosticStatus.WARN, 'no frames processed for more than 2 s'
        return DiagnosticStatus(level=level, name=f'{self.get_name()}: expression recognition',
                                message=text, hardware_id=self._pipeline.backend_name,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                               status=[self.diagnostics_status()]))

    # ------------------------------------------------------------------ parameters at run time
    def _on_set_parameters(self, changes) -> SetParametersResult:
        updated = dict(self._values)
        try:
            for change in changes:
                definition = params.PARAMETERS_BY_NAME.get(change.name)
                if definition is None:
                    return SetParametersResult(successful=False, reason=f'unknown parameter {change.name!r}')
                if definition.read_only:
                    return SetParametersResult(successful=False, reason=f'{change.name!r} is read-only')
                updated[change.name] = definition.validate(change.value)
            detector_config = params.detector_config(updated)
        except ValueError as exc:   # ParameterError, or a detector config rejecting the combination
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            if detector_config != params.detector_config(self._values):
                self._pipeline.set_detector_config(detector_config)
            self._values = updated
        return SetParametersResult(successful=True)

    def close(self) -> None:
        self._slot.close()
        self._worker.join(timeout=2.0)


def main(args=None) -> int:
    rclpy.init(args=args)
    # Created before the slow start-up (model loading): if SIGINT/SIGTERM arrives while the node is
    # starting, rclpy has already shut the context down and creating an executor then would fail.
    executor = SingleThreadedExecutor()
    logger = rclpy.logging.get_logger(params.NODE_NAME)
    try:
        node = FerNode()
    except SHUTDOWN_EXCEPTIONS:     # Ctrl-C / SIGTERM while starting: not an error
        rclpy.try_shutdown()
        return 0
    except Exception as exc:
        if not rclpy.ok():          # interrupted while starting: not an error
            return 0
        if isinstance(exc, params.ParameterError):
            logger.fatal(f'invalid parameter: {exc}')
            code = 2
        else:                       # model missing/corrupt, backend unavailable: fail at start, clearly
            logger.fatal(f'cannot start: {type(exc).__name__}: {exc}')
            code = 1
        rclpy.try_shutdown()
        return code
    try:
        executor.add_node(node)
        executor.spin()
    except SHUTDOWN_EXCEPTIONS:
        pass
    finally:
        node.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
