"""A small ONNX graph builder shared by the converters that write networks with ``onnx`` alone
(fer-convert-face-detector, fer-convert-face-api)."""
from __future__ import annotations

import numpy as np


class OnnxGraph:
    """Collects ONNX nodes and initializers with unique names (``hint_<n>``)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f'{hint}_{self._count}'

    def const(self, hint: str, array: np.ndarray) -> str:
        """An initializer holding ``array``; returns its name."""
        from onnx import numpy_helper
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        """A node of ``op_type`` on ``inputs``; returns the name of its one output."""
        from onnx import helper
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out
