"""fer-convert-face-detector: libfacedetection's CNN (in the ``yuface`` wheel) -> ONNX, with ``onnx`` alone.

The weights come from the wheel's ``libfacedetection.so`` FILE (fer_ros.tools.libfacedetection_weights:
its ELF symbol table, data and relocations; nothing is loaded, so an aarch64 machine converts the
x86_64 wheel). The graph is libfacedetection v3's ``objectdetect_cnn`` (src/facedetectcnn-model.cpp):

    conv head   3x3 stride 2 pad 1, 3 -> 16, ReLU   (the library runs it as a 1x1 convolution over a
                32-channel im2col; channel k*3 + c of that is window position k = ky*3 + kx, colour c)
    dp(1,2)     point-wise 1x1 (no ReLU) then depth-wise 3x3 pad 1 (ReLU)        -> maxpool 2x2/2
    unit(3-6), unit(7-10)  (a unit is two dp pairs)                               -> maxpool
    unit(11-14) = F8      -> maxpool -> unit(15-18) = F16 -> maxpool -> unit(19-22) = F32
    FPN: P32 = dp(27,28)(F32); P16 = dp(25,26)(up2(P32) + F16); P8 = dp(23,24)(up2(P16) + F8)
    heads on P8/P16/P32 (dp without ReLU): cls 29/31/33, bbox 35/37/39, obj 41/43/45, kps 47/49/51

Each record's own ``with_relu`` flag is checked against that structure. Output contract and
metadata: fer_ros.perception.detectors.yunet.DetectorSpec. Opset 13 (Conv, Relu, MaxPool, Resize, Add,
Sigmoid, Mul, Sqrt, Reshape, Transpose, Concat); H and W are dynamic (multiples of 32).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

from fer_ros.io.files import save_onnx
from fer_ros.perception.detectors.yunet import DetectorSpec
from fer_ros.tools.libfacedetection_weights import (
    LIBRARY_IN_WHEEL,
    NUM_LAYERS,
    ConvLayer,
    library_bytes,
    read_conv_layers,
)
from fer_ros.tools.onnx_graph import OnnxGraph

OPSET = 13
LICENCE = ('BSD-3-Clause (libfacedetection, Copyright (c) 2018-2023 Shiqi Yu; '
           'https://github.com/ShiqiYu/libfacedetection); weights trained on WIDER FACE')
# (cls, bbox, obj, kps) point-wise layer index per stride; each is followed by its depth-wise layer
HEADS = {8: (29, 35, 41, 47), 16: (31, 37, 43, 49), 32: (33, 39, 45, 51)}
LATERAL = {32: 27, 16: 25, 8: 23}
HEAD_CHANNELS = (1, 4, 1, 10)


class _GraphBuilder(OnnxGraph):
    """The graph of libfacedetection's layers."""

    def __init__(self, layers: list[ConvLayer]) -> None:
        super().__init__()
        self.layers = layers

    def conv(self, x: str, index: int, want_relu: bool) -> str:
        """One ConvInfoStruct layer (point-wise or depth-wise) as Conv (+ Relu)."""
        layer = self.layers[index]
        if layer.with_relu != want_relu:
            raise ValueError(f'layer {index} ({layer.weight_symbol}): with_relu={layer.with_relu}, the v3 graph '
                             f'needs {want_relu} (another libfacedetection version?)')
        hint = f'l{index}'
        if layer.is_pointwise:
            weight = layer.weights.reshape(layer.num_filters, layer.channels, 1, 1)
            y = self.op('Conv', [x, self.const(hint + '_w', weight), self.const(hint + '_b', layer.biases)], hint,
                        kernel_shape=[1, 1])
        else:
            weight = layer.weights.T.reshape(layer.channels, 1, 3, 3)     # [9, C] -> [C, 1, ky, kx]
            y = self.op('Conv', [x, self.const(hint + '_w', weight), self.const(hint + '_b', layer.biases)], hint,
                        kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=layer.channels)
        return self.op('Relu', [y], hint + '_relu') if want_relu else y

    def dp(self, x: str, index: int, relu: bool = True) -> str:
        """libfacedetection's convolutionDP: point-wise ``index`` (no ReLU), depth-wise ``index + 1``."""
        if not (self.layers[index].is_pointwise and self.layers[index + 1].is_depthwise):
            raise ValueError(f'layers {index}, {index + 1} are not a point-wise/depth-wise pair')
        return self.conv(self.conv(x, index, False), index + 1, relu)

    def unit(self, x: str, index: int) -> str:
        """convolution4layerUnit: two dp pairs, both with ReLU."""
        return self.dp(self.dp(x, index), index + 2)

    def pool(self, x: str) -> str:
        return self.op('MaxPool', [x], 'pool', kernel_shape=[2, 2], strides=[2, 2])

    def upsample(self, x: str) -> str:
        scales = self.const('up_scales', np.array([1, 1, 2, 2], np.float32))
        return self.op('Resize', [x, '', scales], 'up2', mode='nearest', nearest_mode='floor',
                       coordinate_transformation_mode='asymmetric')

    def anchors_last(self, x: str, channels: int) -> str:
        """float[N, C, h, w] -> float[N, h*w, C] (anchor-major, row-major grid)."""
        shape = self.const('shape', np.array([0, channels, -1], np.int64))
        return self.op('Transpose', [self.op('Reshape', [x, shape], 'flat')], 'anchors', perm=[0, 2, 1])


def build_model(layers: list[ConvLayer], spec: DetectorSpec):
    """The ONNX ModelProto of the network (checked with onnx.checker). See the module docstring."""
    import onnx
    from onnx import TensorProto, helper

    if len(layers) != NUM_LAYERS:
        raise ValueError(f'expected {NUM_LAYERS} layers, got {len(layers)}')
    head = layers[0]
    if not head.is_pointwise or head.channels != 32 or head.num_filters != 16:
        raise ValueError(f'layer 0: expected the 32-channel im2col head with 16 filters, got {head.channels} -> '
                         f'{head.num_filters}')
    g = _GraphBuilder(layers)
    # im2col channel (ky*3 + kx)*3 + c -> an ordinary 3x3 kernel over the 3 colour channels (27 of 32 used)
    kernel = head.weights[:, :27].reshape(16, 3, 3, 3).transpose(0, 3, 1, 2)   # [o, ky, kx, c] -> [o, c, ky, kx]
    if not head.with_relu:
        raise ValueError('layer 0: the v3 graph needs with_relu on the head convolution')
    x = g.op('Conv', [spec.input_name, g.const('l0_w', kernel), g.const('l0_b', head.biases)], 'l0',
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = g.op('Relu', [x], 'l0_relu')
    x = g.pool(g.dp(x, 1))
    x = g.pool(g.unit(g.unit(x, 3), 7))
    f8 = g.unit(x, 11)
    f16 = g.unit(g.pool(f8), 15)
    f32 = g.unit(g.pool(f16), 19)
    p32 = g.dp(f32, LATERAL[32])
    p16 = g.dp(g.op('Add', [g.upsample(p32), f16], 'add16'), LATERAL[16])
    p8 = g.dp(g.op('Add', [g.upsample(p16), f8], 'add8'), LATERAL[8])
    per_kind: list[list[str]] = [[], [], [], []]
    for stride, feature in ((8, p8), (16, p16), (32, p32)):
        for kind, (index, channels) in enumerate(zip(HEADS[stride], HEAD_CHANNELS)):
            if layers[index].num_filters != channels:
                raise ValueError(f'layer {index}: head with {layers[index].num_filters} outputs, expected {channels}')
            per_kind[kind].append(g.anchors_last(g.dp(feature, index, relu=False), channels))
    cls, box, obj, kps = (g.op('Concat', parts, 'cat', axis=1) for parts in per_kind)
    prob = g.op('Mul', [g.op('Sigmoid', [cls], 'sig_cls'), g.op('Sigmoid', [obj], 'sig_obj')], 'cls_obj')
    squeeze_shape = g.const('shape', np.array([0, -1], np.int64))
    scores = g.op('Reshape', [g.op('Sqrt', [prob], 'sqrt'), squeeze_shape], 'scores_flat')
    g.nodes.append(helper.make_node('Identity', [scores], [spec.scores_name], name=spec.scores_name))
    g.nodes.append(helper.make_node('Identity', [box], [spec.boxes_name], name=spec.boxes_name))
    g.nodes.append(helper.make_node('Identity', [kps], [spec.landmarks_name], name=spec.landmarks_name))
    inputs = [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, ['batch', 3, 'height', 'width'])]
    outputs = [helper.make_tensor_value_info(spec.scores_name, TensorProto.FLOAT, ['batch', 'anchors']),
               helper.make_tensor_value_info(spec.boxes_name, TensorProto.FLOAT, ['batch', 'anchors', 4]),
               helper.make_tensor_value_info(spec.landmarks_name, TensorProto.FLOAT, ['batch', 'anchors', 10])]
    graph = helper.make_graph(g.nodes, 'libfacedetection_v3', inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                              producer_name='fer_ros.tools.convert_face_detector')
    model.ir_version = 8     # ONNX Runtime >= 1.10 and TensorRT 8.6/10 read IR 8 (opset 13)
    helper.set_model_props(model, spec.to_metadata())
    model.doc_string = 'libfacedetection v3 face detector (YuNet family); see the fer_ros_detector metadata'
    onnx.checker.check_model(model)
    return model


def convert(out: str, wheel: str | None = None, library: str | None = None) -> DetectorSpec:
    """Read the weights from ``wheel`` (or a bare ``library`` file) and write the ONNX model ``out``
    atomically. Returns the spec written. Raises OSError / ValueError / KeyError with the file's name."""

    if wheel:
        data, source = library_bytes(wheel), f'{os.path.basename(wheel)}:{LIBRARY_IN_WHEEL}'
    else:
        if not library or not os.path.isfile(library):
            raise FileNotFoundError(f'no such file: {library}')
        with open(library, 'rb') as fh:
            data, source = fh.read(), os.path.basename(library)
    layers = read_conv_layers(data, source)
    spec = DetectorSpec(extra={
        'architecture': 'libfacedetection v3 CNN (YuNet family), objectdetect_cnn of src/facedetectcnn-model.cpp',
        'source': f'PyPI package yuface, {source}',
        'library_sha256': hashlib.sha256(data).hexdigest(),
        'licence': LICENCE,
        'input': 'float32[N, 3, H, W] BGR 0..255, H and W multiples of 32, zero-padded right/bottom',
        'score': 'sqrt(sigmoid(cls) * sigmoid(obj))',
        'box_decode': 'centre = (dx, dy) * s + (col, row) * s; size = exp(dw, dh) * s',
        'landmark_decode': 'point = (lx, ly) * s + (col, row) * s; order: right eye, left eye, nose, mouth right, '
                           'mouth left (as libfacedetection)',
        'anchor_order': 'stride 8 grid row-major, then 16, then 32',
    })
    save_onnx(build_model(layers, spec), out)
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='fer-convert-face-detector', description=__doc__.split('\n\n')[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--wheel', help='a yuface wheel, any platform (pip download --no-deps --only-binary=:all: '
                                     '--platform manylinux2014_x86_64 yuface==2023.5.1)')
    src.add_argument('--library', help='a bare libfacedetection.so instead of the wheel')
    parser.add_argument('--out', default='models/face_detector_libfacedetection.onnx', help='ONNX file to write')
    args = parser.parse_args(argv)
    try:
        spec = convert(args.out, wheel=args.wheel, library=args.library)
    except (OSError, ValueError, KeyError) as exc:
        print(f'fer-convert-face-detector: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {args.out}: {spec.name}, strides {list(spec.strides)}, from {spec.extra["source"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
