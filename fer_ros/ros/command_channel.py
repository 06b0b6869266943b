"""The `command` topic as a contract a controller can rely on (docs/commands.md, "Safety contract").

- ``command_qos``: the QoS the node offers and a consumer should request. RELIABLE and TRANSIENT_LOCAL
  with depth 1: the last message (always the current command, change or heartbeat) is latched, so a
  consumer that (re)starts and asks for transient-local receives it at once; one with default
  (volatile) QoS still matches, gets no history, and learns the command from a repeat the channel
  publishes when a subscriber matches (Jazzy and later; on Humble, which has no matched event, at the
  next heartbeat). A deadline and an
  AUTOMATIC liveliness lease of ``2 x heartbeat_period_s``: a consumer that requests them (or any
  longer period) gets a middleware event when the node dies, freezes or stops publishing.
- ``CommandChannel``: the ONE place that publishes commands. The Pipeline calls it from its command
  section (under its lock) for frames, timer ticks and forced HOLDs alike, so messages leave in the
  order they were decided; header stamps never decrease (a command decided late, after a timer
  message, carries that message's stamp), except across a camera clock jump of more than
  ``clock_reset_s`` (the node reports those in diagnostics).
- ``CommandTicker``: the command clock on a thread of its own, not the executor's: HOLD and heartbeats
  keep coming whatever inference, a parameter change or a service call is waiting for.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy

from fer_ros.core.types import Command
from fer_ros.msg import HriCommand
from fer_ros.ros.convert import command_to_msg

try:   # Jazzy and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

COMMAND_TOPIC = 'command'
# The deadline and liveliness lease the node offers, in heartbeat periods: one period of slack for a
# heartbeat that comes late because the machine is busy.
DEADLINE_HEARTBEATS = 2.0


def command_qos(deadline_s: float) -> QoSProfile:
    """The command channel's QoS with a deadline and liveliness lease of ``deadline_s`` seconds.

    The node offers ``command_qos(DEADLINE_HEARTBEATS * heartbeat_period_s)``; a consumer requests its
    own ``deadline_s`` (>= the offer, or DDS reports incompatible QoS and delivers nothing)."""
    period = Duration(seconds=float(deadline_s))
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL, deadline=period,
                      liveliness=LivelinessPolicy.AUTOMATIC, liveliness_lease_duration=period)


def subscription_event_callbacks(**callbacks) -> SubscriptionEventCallbacks:
    """rclpy's SubscriptionEventCallbacks (deadline=, liveliness=, incompatible_qos=...) on Humble to Kilted."""
    return SubscriptionEventCallbacks(**callbacks)


def publisher_matched_callbacks(on_matched) -> PublisherEventCallbacks | None:
    """PublisherEventCallbacks with a matched callback; None where rclpy has no matched event (Humble)."""
    try:
        return PublisherEventCallbacks(matched=on_matched)
    except TypeError:
        return None


def _nanoseconds(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class CommandChannel:
    """The command publisher with its guarantees (see the module docstring).

    Args:
        create_publisher: the node's ``create_publisher`` (or ``create_lifecycle_publisher``).
        heartbeat_period_s: commands.yaml's heartbeat period (sets the offered deadline and lease).
        clock_reset_s: a header stamp this much older than the last one is a camera clock jump and
            passes through; a smaller step back is raised to the last stamp.
    """

    def __init__(self, create_publisher, heartbeat_period_s: float, clock_reset_s: float) -> None:
        self.deadline_s = DEADLINE_HEARTBEATS * heartbeat_period_s
        self._publisher = create_publisher(HriCommand, COMMAND_TOPIC, command_qos(self.deadline_s),
                                           event_callbacks=publisher_matched_callbacks(self._on_matched))
        self._clock_reset_ns = int(clock_reset_s * 1e9)
        self._lock = threading.Lock()      # callers already serialise; this keeps the counters coherent
        self._open = False                 # closed: after the final HOLD, until the next activation
        self._last_ns: int | None = None
        self._last_header = None
        self.current: Command | None = None
        self.published = 0
        self.last_published: float | None = None      # time.monotonic() of the last message

    @property
    def publisher(self):
        return self._publisher

    @property
    def topic(self) -> str:
        return self._publisher.topic_name

    def open(self) -> None:
        """Accept commands (activation)."""
        with self._lock:
            self._open = True

    def close(self) -> None:
        """Publish nothing more (after the final HOLD: a frame still in flight must not speak after it)."""
        with self._lock:
            self._open = False

    def publish(self, commands: list[Command], header) -> None:
        """Publish ``commands`` in order, each with ``header`` (stamp raised to keep stamps monotonic);
        nothing while closed."""
        if not commands:
            return
        with self._lock:
            if not self._open:
                return
            stamp_ns = _nanoseconds(header.stamp)
            if self._last_ns is not None and 0 < self._last_ns - stamp_ns <= self._clock_reset_ns:
                header.stamp.sec, header.stamp.nanosec = divmod(self._last_ns, 1_000_000_000)
                stamp_ns = self._last_ns
            for command in commands:
                self._publish(command, header)
            self._last_ns = stamp_ns

    def _publish(self, command: Command, header) -> None:
        self._publisher.publish(command_to_msg(command, header))
        self.current, self._last_header = command, header
        self.published += 1
        self.last_published = time.monotonic()

    def _on_matched(self, info) -> None:
        """A new subscriber: repeat the command in force as a heartbeat with the last stamp, so that one
        with volatile QoS (no history) learns it now rather than at the next heartbeat (up to a period)."""
        if info.total_count_change <= 0:    # not current_count_change: a match and an unmatch may come as one event
            return
        with self._lock:
            if self._open and self.current is not None:
                self._publish(dataclasses.replace(self.current, heartbeat=True), self._last_header)

    def wait_acknowledged(self, timeout_s: float) -> bool:
        """Wait until every matched reliable subscriber acknowledged what was published (or timeout)."""
        return bool(self._publisher.wait_for_all_acked(Duration(seconds=float(timeout_s))))

    def subscriber_count(self) -> int:
        return self._publisher.get_subscription_count()


class CommandTicker:
    """Calls ``tick()`` every ``period_s`` seconds on its own daemon thread until ``stop()``.

    An exception in ``tick`` is passed to ``on_error`` and the ticking goes on (the heartbeat must
    outlive a bug in one tick)."""

    def __init__(self, tick: Callable[[], None], period_s: float, on_error: Callable[[Exception], None],
                 name: str = 'fer_command_clock') -> None:
        self._tick, self._period, self._on_error = tick, float(period_s), on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - reported, and the clock keeps running
                self._on_error(exc)
            next_time = max(next_time + self._period, time.monotonic())
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop ticking; True when the thread ended within ``timeout_s``."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()
