"""fer_command_consumer: a reference consumer of fer_node's `command` topic that implements the Safety
contract (docs/commands.md, "Safety contract"). Copy it into your controller.

- It subscribes with the contract's QoS (``fer_ros.ros.command_channel.command_qos``): RELIABLE,
  TRANSIENT_LOCAL, depth 1, so it receives the current command at once when it (re)starts; a deadline
  and a liveliness lease of ``deadline_s`` (default 2.0 s = the node's 2 heartbeat periods), so the
  middleware tells it when the node dies, freezes or hangs.
- ``fer_ros.examples.command_watch.CommandWatch`` decides what to act on: the node's current command
  while the channel is healthy, HOLD when it is not (silence is never "go on").
- ``act`` is where a controller would stop the robot or let it move; here it prints one line per
  change: ``<monotonic s> ACT <command> may_move=<bool> [<reason>]``.

Run (``ros2 run fer_ros fer_command_consumer --ros-args -p deadline_s:=2.0``):

    install/fer_ros/lib/fer_ros/fer_command_consumer
"""
from __future__ import annotations

import sys
import time

import rclpy
from rclpy.node import Node

from fer_ros.examples.command_watch import CommandWatch, Decision
from fer_ros.msg import HriCommand
from fer_ros.ros.command_channel import COMMAND_TOPIC, command_qos, subscription_event_callbacks
from fer_ros.ros.compat import SHUTDOWN_EXCEPTIONS

CHECK_HZ = 20.0     # how often the local deadline check runs (the middleware events come on their own)


class CommandConsumer(Node):
    def __init__(self) -> None:
        super().__init__('fer_command_consumer')
        deadline_s = float(self.declare_parameter('deadline_s', 2.0).value)
        self.watch = CommandWatch(deadline_s)
        self._acted: Decision | None = None
        self.create_subscription(
            HriCommand, COMMAND_TOPIC, self._on_command, command_qos(deadline_s),
            event_callbacks=subscription_event_callbacks(
                deadline=lambda _info: self._event(self.watch.on_deadline_missed),
                liveliness=lambda info: self._event(lambda now: self.watch.on_liveliness(info.alive_count > 0, now)),
                incompatible_qos=lambda info: self._event(
                    lambda now: self.watch.on_incompatible_qos(f'policy id {info.last_policy_kind}'))))
        self.create_timer(1.0 / CHECK_HZ, lambda: self._event(lambda now: None))
        self._event(lambda now: None)       # HOLD until the first command arrives

    def _on_command(self, msg: HriCommand) -> None:
        self._event(lambda now: self.watch.on_message(msg.command, now))

    def _event(self, update) -> None:
        now = time.monotonic()
        update(now)
        decision = self.watch.effective(now)
        if decision != self._acted:
            self._acted = decision
            self.act(decision, now)

    def act(self, decision: Decision, now: float) -> None:
        """Replace with the controller's reaction (stop the base, hold the arm, resume...)."""
        reason = f' [{decision.reason}]' if decision.reason else ''
        print(f'{now:.3f} ACT {decision.command} may_move={self.watch.may_move(now)}{reason}', flush=True)


def main(args=None) -> int:
    rclpy.init(args=args)
    node = CommandConsumer()
    try:
        rclpy.spin(node)
    except SHUTDOWN_EXCEPTIONS:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
