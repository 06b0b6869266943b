"""What a controller should do with fer_node's `command` channel: the consumer side of the Safety
contract (docs/commands.md, "Safety contract"), without ROS so it can be read and tested on its own.

The rule, in one line: act on the node's current command only while the channel proves the node is
alive and looking; otherwise behave as if the command were HOLD.

``CommandWatch.effective(now)`` is the command to act on:

- nothing received yet -> HOLD ("no command yet");
- the last message is older than ``deadline_s`` (the node died, froze, hung, or its messages are
  lost) -> HOLD, whatever the last command said. The middleware's deadline and liveliness events
  (``on_deadline_missed``, ``on_liveliness``) say the same thing sooner or more reliably; this local
  clock check is the backstop for an RMW that does not deliver them;
- the middleware reported incompatible QoS (the subscription can never receive) -> HOLD until a
  message does arrive;
- otherwise the last command received (STOP, HOLD, PROCEED, ...), heartbeat or not.

``may_move(now)`` is False for STOP, PAUSE and HOLD (and for silence): a controller that is stopped
stays stopped until the node itself says PROCEED (or another command that allows motion).
"""
from __future__ import annotations

from dataclasses import dataclass

HOLD = 'HOLD'
# Commands that never authorise motion; silence counts as HOLD.
NO_MOTION = frozenset({'STOP', 'PAUSE', HOLD})


@dataclass(frozen=True)
class Decision:
    """The command to act on and why (``reason`` is '' while the channel is healthy)."""

    command: str
    reason: str = ''

    @property
    def healthy(self) -> bool:
        return not self.reason


class CommandWatch:
    """The consumer's state: the last command received and the channel's health.

    Args:
        deadline_s: silence longer than this means the node cannot be relied on. Request the same
            value as the QoS deadline and liveliness lease of the subscription; it must be at least
            the deadline the node offers (2 heartbeat periods, 2.0 s by default), or the middleware
            reports incompatible QoS and nothing is received.
    Times (``now``) are seconds of any monotonic clock, the same for every call.
    """

    def __init__(self, deadline_s: float = 2.0) -> None:
        if not deadline_s > 0:
            raise ValueError(f'deadline_s must be > 0, got {deadline_s!r}')
        self.deadline_s = float(deadline_s)
        self.command: str | None = None     # last command received
        self.received_at: float | None = None
        self._fault = ''                    # set by a middleware event, cleared by the next message

    def on_message(self, command: str, now: float) -> None:
        """A command message arrived (change or heartbeat)."""
        self.command, self.received_at, self._fault = command, float(now), ''

    def on_deadline_missed(self, now: float) -> None:
        """The middleware says no message arrived within the requested deadline."""
        self._fault = f'no message within the {self.deadline_s:g} s deadline (node dead, frozen or hung)'

    def on_liveliness(self, alive: bool, now: float) -> None:
        """The middleware's liveliness report for the node's writer (alive_count > 0 or not)."""
        if not alive:
            self._fault = 'the node lost liveliness (process dead or frozen)'

    def on_incompatible_qos(self, policy: str) -> None:
        """The node offers a QoS this subscription cannot match: nothing will ever be received."""
        self._fault = f'incompatible QoS ({policy}): request a deadline of at least the node\'s offer'

    def effective(self, now: float) -> Decision:
        """The command to act on now (see the module docstring)."""
        if self.command is None or self.received_at is None:
            return Decision(HOLD, self._fault or 'no command received yet')
        silent_for = float(now) - self.received_at
        if silent_for > self.deadline_s:
            return Decision(HOLD, f'no message for {silent_for:.1f} s (> {self.deadline_s:g} s deadline)')
        if self._fault:
            return Decision(HOLD, self._fault)
        return Decision(self.command)

    def may_move(self, now: float) -> bool:
        """True only while the channel is healthy and the current command allows motion."""
        decision = self.effective(now)
        return decision.healthy and decision.command not in NO_MOTION
