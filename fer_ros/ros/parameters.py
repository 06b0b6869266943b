"""The parameter table (fer_ros.settings.params) on an rclpy node: declared with descriptions, ranges
and read-only flags, and read back validated."""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from fer_ros.settings.params import PARAMETERS, ParameterError


def declare(node, validate: bool = True, enforce_read_only: bool = True) -> dict[str, Any]:
    """Declare every parameter on an rclpy node (with description, range, read-only) and return the
    values (overrides from --params-file / -p included), validated unless ``validate`` is False.

    Types are checked here rather than by rclpy (dynamic typing in the descriptor), so a value of the
    wrong type is refused with a message naming the parameter, at start and at run time.
    enforce_read_only: False leaves read-only parameters settable (a managed node while unconfigured;
    its own callback refuses them once configured).

    Raises:
        ParameterError: a value given at start is invalid.
    """
    values = {}
    for p in PARAMETERS:
        desc = p.description
        if p.choices:
            desc += f" (one of: {', '.join(p.choices)})"
        descriptor = ParameterDescriptor(description=desc, read_only=p.read_only and enforce_read_only,
                                         dynamic_typing=True)
        if p.low is not None and p.high is not None and isinstance(p.default, float):
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(p.low), to_value=float(p.high),
                                                                  step=0.0)]
        elif (p.low is not None and p.high is not None and isinstance(p.default, int)
              and not isinstance(p.default, bool)):
            descriptor.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high), step=0)]
        try:
            value = node.declare_parameter(p.name, p.default, descriptor).value
        except Exception as exc:  # rclpy raises InvalidParameterValueException & co.
            raise ParameterError(f'parameter {p.name!r}: {exc}') from exc
        values[p.name] = p.validate(value) if validate else value
    return values


def current_values(node) -> dict[str, Any]:
    """The node's current values of every parameter of the table, validated (ParameterError)."""
    return {p.name: p.validate(node.get_parameter(p.name).value) for p in PARAMETERS}
