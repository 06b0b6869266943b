"""`make demo`: the real node, a camera process streaming the repository's face photos, and this
process printing what the node publishes. Exits 0 when the node published expressions and commands.

    scripts/with_ros.sh python -m fer_ros.tools.demo [--seconds 6] [--faces 2] [--transport raw]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import rclpy
from rclpy.node import Node

from fer_ros.msg import FaceExpressionArray, HriCommand
from fer_ros.ros.fastdds_profile import apply_profile
from fer_ros.util.processes import ChildExited, node_is_ready, start_camera, start_node, wait_until


class DemoPrinter(Node):
    def __init__(self, print_period_s: float) -> None:
        super().__init__('fer_demo')
        self.print_period_s = print_period_s
        self.frames = 0
        self.latencies_ms: list[float] = []
        self.last_print: dict[str, tuple[float, str]] = {}
        self.commands = 0
        self.create_subscription(FaceExpressionArray, 'expressions', self.on_expressions, 10)
        self.create_subscription(HriCommand, 'command', self.on_command, 10)

    def on_expressions(self, msg: FaceExpressionArray) -> None:
        now = time.time()
        self.frames += 1
        self.latencies_ms.append((now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1000)
        for face in msg.faces:
            last_time, last_expr = self.last_print.get(face.face_id, (0.0, ''))
            if face.expression != last_expr or now - last_time >= self.print_period_s:
                self.last_print[face.face_id] = (now, face.expression)
                top = sorted(zip(msg.labels, face.probabilities), key=lambda kv: -kv[1])[:3]
                who = face.person_name or face.person_id or '-'
                gate = 'may command' if face.may_command else f'may not command ({face.attention or "not enrolled"})'
                print(f'face {face.face_id:>3} person {who:<4} {face.expression:<9} {face.confidence:.2f}   '
                      f'box=({face.roi.x_offset},{face.roi.y_offset},{face.roi.width}x{face.roi.height})  '
                      f'yaw {face.head_yaw:.0f} pitch {face.head_pitch:.0f}  {gate}  '
                      f'top3: ' + ', '.join(f'{k} {v:.2f}' for k, v in top), flush=True)

    def on_command(self, msg: HriCommand) -> None:
        self.commands += 1
        if not msg.heartbeat:
            print(f'>>> COMMAND {msg.command:<8} priority {msg.priority:>3}  from face '
                  f'{msg.source_face_id or "-"} ({msg.expression or "no face"}, {msg.confidence:.2f})', flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=6.0, help='camera stream length (default 6)')
    ap.add_argument('--faces', type=int, default=2, help='faces per frame (default 2)')
    ap.add_argument('--rate', type=float, default=30.0, help='camera rate in Hz (default 30)')
    ap.add_argument('--transport', choices=('raw', 'compressed'), default='raw')
    ap.add_argument('--model', default='', help="model path ('' = default)")
    ap.add_argument('--print-period', type=float, default=1.0, help='reprint an unchanged face every N s')
    args = ap.parse_args(argv)

    apply_profile()   # the node and camera processes get the large-image Fast DDS profile
    rclpy.init()
    printer = DemoPrinter(args.print_period)
    node = start_node({'image_transport': args.transport, **({'model_path': args.model} if args.model else {})})
    camera = None
    try:
        print('demo: waiting for fer_node ...', flush=True)
        image_topic = '/image/compressed' if args.transport == 'compressed' else '/image'
        try:
            wait_until(lambda: node_is_ready(printer, image_topic), 60, node, 'fer_node to come up',
                       step=lambda: rclpy.spin_once(printer, timeout_sec=0.1))
        except (ChildExited, TimeoutError) as exc:
            print(f'demo: {exc}', file=sys.stderr)
            return 1
        print(f'demo: streaming {args.seconds:.0f} s of 640x480 frames with {args.faces} face(s) at '
              f'{args.rate:.0f} Hz ({args.transport})', flush=True)
        camera = start_camera({'rate_hz': args.rate, 'duration_s': args.seconds, 'num_faces': args.faces,
                               'transport': args.transport, 'distinct_frames': 1})
        while camera.popen.poll() is None:
            rclpy.spin_once(printer, timeout_sec=0.05)
        end = time.monotonic() + 1.0            # keep receiving the outputs of the last frames
        while time.monotonic() < end:
            rclpy.spin_once(printer, timeout_sec=0.05)
    finally:
        for proc in (camera, node):
            if proc is not None:
                proc.stop()
        printer.destroy_node()
        rclpy.try_shutdown()
    if printer.frames == 0:
        print('demo: FAILED, no expressions received', file=sys.stderr)
        return 1
    lat = sorted(printer.latencies_ms)
    print(f'demo: {printer.frames} frames processed ({printer.frames / args.seconds:.1f}/s), latency image stamp '
          f'-> expressions received: median {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms; '
          f'{printer.commands} command messages', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
