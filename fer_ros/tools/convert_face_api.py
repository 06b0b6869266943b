"""fer-convert-face-api: two networks of the npm package ``@vladmandic/face-api`` (MIT) -> ONNX, with ``onnx`` alone.

Both are read from the package tarball's TF.js weights (``model/<net>.bin`` and its
``-weights_manifest.json``; uint8-quantised tensors are dequantised as q * scale + min). Nothing runs
JavaScript or TensorFlow; outputs agree with face-api's own TF.js code to 2e-7 (checked once with
@tensorflow/tfjs 4.22 on Node 20, see docs/people.md). Both take BGR 0..255 (the channel flip is folded
into the first kernel; the mean subtraction and /255 are nodes of the graph).

**Face embedding** (``face_recognition_model``): face-api's ``FaceRecognitionNet``, the ResNet-34-like
metric network of dlib's ``dlib_face_recognition_resnet_model_v1`` (Davis King's weights, 99.38 % on LFW
per dlib), as face-api.js re-expresses it:

    input 150x150 RGB, minus the mean (122.782, 117.001, 104.298), / 255
    conv 7x7/2 valid 3->32 (+bias, *scale +shift, ReLU) -> maxpool 3x3/2 valid
    3 residual(32) -> down(64) + 3 residual(64) -> down(128) + 2 residual(128)
    -> down(256) + 2 residual(256) -> down(256) -> mean over H, W -> fc 256->128 (no bias)
    residual(x) = ReLU(x + conv2(ReLU(conv1(x))))            (3x3 'same' convs, each +bias, *scale +shift)
    down(x)     = ReLU(avgpool2x2/2(x) [zero channels appended] + conv2(ReLU(conv1 3x3/2 valid(x))))
                  where conv's output is 1 smaller than the pool's, zeros are appended at the bottom/right

Each convolution's bias and following per-channel scale layer are folded into the Conv (exact).
Contract and metadata: fer_ros.perception.embedding.EmbedderSpec (key ``fer_ros_embedder``).

**68 landmarks** (``face_landmark_68_model``): face-api's ``FaceLandmark68Net``:

    input 112x112 RGB, minus the same mean, / 255
    4 dense blocks (32, 64, 128, 256 channels; each halves the size: 112 -> 7):
        out1 = ReLU(c0(x))     c0: 3x3/2 conv (block 0) or separable conv (depth-wise 3x3/2 + point-wise)
        out2 = s1(out1); out3 = s2(ReLU(out1 + out2)); out4 = s3(ReLU(out1 + out2 + out3))
        block = ReLU(out1 + out2 + out3 + out4)           s1..s3: separable 3x3/1 'same' (+bias)
    avgpool 7x7/2 -> fc 256 -> 136 = 68 (x, y) pairs, fractions of the input square
    ('same' with stride 2 on an even size pads one row/column at the bottom/right, as TensorFlow does)

Contract and metadata: fer_ros.perception.landmarks.LandmarkSpec (key ``fer_ros_landmarks``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np

from fer_ros.io.files import save_onnx, sha256_file
from fer_ros.perception.embedding import EmbedderSpec
from fer_ros.perception.landmarks import LandmarkSpec
from fer_ros.tools.onnx_graph import OnnxGraph

OPSET = 13
# The pinned source (benchmarks/accuracy.py and bench-people fetch the same tarball for their photos).
PACKAGE = '@vladmandic/face-api'
VERSION = '1.7.15'
TARBALL = 'vladmandic-face-api-1.7.15.tgz'
TARBALL_SHA256 = '0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031'
EMBEDDER_NET, LANDMARK_NET = 'face_recognition_model', 'face_landmark_68_model'
PACKAGE_LICENCE = ('MIT (@vladmandic/face-api, Copyright (c) Vladimir Mandic; face-api.js, Copyright (c) 2018 '
                   'Vincent Muehler)')
EMBEDDER_LICENCE = (PACKAGE_LICENCE + '; network and weights: dlib_face_recognition_resnet_model_v1 by Davis E. '
                    'King (dlib-models, released into the public domain / CC0)')
LANDMARK_LICENCE = PACKAGE_LICENCE + '; weights trained by the face-api.js author (MIT, as the package)'
MEAN_RGB = (122.782, 117.001, 104.298)
# (name, output channels, downsampling) in the order of FaceRecognitionNet.forwardInput
RESIDUALS = (('conv32_1', 32, False), ('conv32_2', 32, False), ('conv32_3', 32, False),
             ('conv64_down', 64, True), ('conv64_1', 64, False), ('conv64_2', 64, False), ('conv64_3', 64, False),
             ('conv128_down', 128, True), ('conv128_1', 128, False), ('conv128_2', 128, False),
             ('conv256_down', 256, True), ('conv256_1', 256, False), ('conv256_2', 256, False),
             ('conv256_down_out', 256, True))


def read_tfjs_weights(manifest: list, data: bytes, source: str) -> dict[str, np.ndarray]:
    """A TF.js weights manifest (one group) and its concatenated shard bytes -> {name: float32 array}.

    Quantised entries (``quantization.dtype`` uint8/uint16) are dequantised as q * scale + min.
    Raises:
        ValueError: naming ``source``, for a manifest the data does not match (sizes, dtypes).
    """
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for entry in group['weights']:
            shape = tuple(int(d) for d in entry['shape'])
            count = int(np.prod(shape)) if shape else 1
            quant = entry.get('quantization')
            dtype = np.dtype(quant['dtype'] if quant else entry['dtype'])
            if dtype not in (np.uint8, np.uint16, np.float32):
                raise ValueError(f'{source}: {entry["name"]}: unsupported dtype {dtype}')
            size = count * dtype.itemsize
            if offset + size > len(data):
                raise ValueError(f'{source}: {entry["name"]} needs bytes {offset}..{offset + size}, '
                                 f'the weights hold {len(data)}')
            values = np.frombuffer(data, dtype, count, offset).astype(np.float64)
            offset += size
            if quant:
                values = values * float(quant['scale']) + float(quant['min'])
            weights[entry['name']] = values.astype(np.float32).reshape(shape)
    if offset != len(data):
        raise ValueError(f'{source}: the manifest describes {offset} bytes, the weights hold {len(data)}')
    return weights


def read_package(tarball: str, net: str) -> tuple[dict[str, np.ndarray], str]:
    """Network ``net``'s weights (e.g. 'face_recognition_model') from the npm tarball, and the sha256 of
    its weights file."""
    if not os.path.isfile(tarball):
        raise FileNotFoundError(f'no such file: {tarball}')
    weights_member = f'package/model/{net}.bin'
    manifest_member = f'package/model/{net}-weights_manifest.json'
    with tarfile.open(tarball) as tar:
        members = {}
        for name in (manifest_member, weights_member):
            member = tar.extractfile(name) if name in tar.getnames() else None
            if member is None:
                raise ValueError(f'{tarball}: no {name} inside (not a {PACKAGE} tarball?)')
            members[name] = member.read()
    manifest, data = json.loads(members[manifest_member].decode('utf-8')), members[weights_member]
    return read_tfjs_weights(manifest, data, f'{os.path.basename(tarball)}:{weights_member}'), \
        hashlib.sha256(data).hexdigest()


class _Graph(OnnxGraph):
    """face-api's networks: normalised BGR input, the checked model."""

    def normalised_input(self, input_name: str) -> str:
        """(x - mean) / 255 with face-api's mean, in BGR order (the kernels' input channels are flipped)."""
        mean_bgr = np.array(MEAN_RGB[::-1], np.float32).reshape(1, 3, 1, 1)
        x = self.op('Sub', [input_name, self.const('mean', mean_bgr)], 'centre')
        return self.op('Mul', [x, self.const('inv255', np.array(1 / 255, np.float32))], 'scale01')

    def model(self, name: str, input_name: str, size: int, output: str, output_shape: list, spec, doc: str):
        """The checked ONNX ModelProto of these nodes (float input [N, 3, size, size]), ``spec`` in its metadata."""
        import onnx
        from onnx import TensorProto, helper

        inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ['batch', 3, size, size])]
        outputs = [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, ['batch', *output_shape])]
        self.nodes.append(helper.make_node('Identity', [output], [spec.output_name], name=spec.output_name))
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                                  producer_name='fer_ros.tools.convert_face_api')
        model.ir_version = 8     # ONNX Runtime >= 1.10 and TensorRT 8.6/10 read IR 8 (opset 13)
        helper.set_model_props(model, {spec.METADATA_KEY: spec.to_json()})
        model.doc_string = doc
        onnx.checker.check_model(model)
        return model


def folded_conv(w: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """``prefix``/conv (filters [kh, kw, in, out], bias) followed by ``prefix``/scale (weights, biases) as
    one ONNX kernel float32[out, in, kh, kw] and bias float32[out]: (conv(x) + b) * s + t."""
    filters, bias = w[f'{prefix}/conv/filters'], w[f'{prefix}/conv/bias']
    scale, shift = w[f'{prefix}/scale/weights'], w[f'{prefix}/scale/biases']
    kernel = filters.transpose(3, 2, 0, 1) * scale[:, None, None, None]
    return kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)


def build_embedder(w: dict[str, np.ndarray], spec: EmbedderSpec):
    """The face embedding network's ONNX ModelProto (checked); see the module docstring."""
    g = _Graph()

    def conv(x: str, prefix: str, stride: int, relu: bool, flip_input: bool = False) -> str:
        kernel, bias = folded_conv(w, prefix)
        if flip_input:
            kernel = kernel[:, ::-1]            # the network was trained on RGB; the input is BGR
        k = kernel.shape[-1]
        pads = [0, 0, 0, 0] if stride == 2 else [k // 2] * 4      # strided convs are 'valid', others 'same'
        y = g.op('Conv', [x, g.const(prefix + '_w', kernel), g.const(prefix + '_b', bias)], prefix,
                 kernel_shape=[k, k], strides=[stride, stride], pads=pads)
        return g.op('Relu', [y], prefix + '_relu') if relu else y

    x = conv(g.normalised_input(spec.input_name), 'conv32_down', 2, True, flip_input=True)
    x = g.op('MaxPool', [x], 'pool', kernel_shape=[3, 3], strides=[2, 2])
    channels = 32
    for name, out_channels, down in RESIDUALS:
        y = conv(conv(x, f'{name}/conv1', 2 if down else 1, True), f'{name}/conv2', 1, False)
        if down:
            shortcut = g.op('AveragePool', [x], name + '_pool', kernel_shape=[2, 2], strides=[2, 2])
            if out_channels != channels:    # zero channels appended to the shortcut
                shortcut = g.op('Pad', [shortcut, g.const('pad', np.array([0, 0, 0, 0, 0, out_channels - channels,
                                                                              0, 0], np.int64))], name + '_padc')
            # the 'valid' stride-2 conv may be one row/column short of the pool: zeros at the bottom/right
            # (face-api's isAdjustShape); computed from the shapes, which are fixed for a 150 px input
            y = g.op('Pad', [y, g.const('pad', np.array([0, 0, 0, 0, 0, 0, *_shortfall(name)], np.int64))],
                     name + '_padhw')
            x = shortcut
        x = g.op('Relu', [g.op('Add', [x, y], name + '_add')], name + '_out')
        channels = out_channels
    pooled = g.op('ReduceMean', [x], 'gap', axes=[2, 3], keepdims=0)
    out = g.op('MatMul', [pooled, g.const('fc', w['fc'].astype(np.float32))], 'fc')     # fc: [256, 128]
    return g.model('face_api_recognition', spec.input_name, spec.size, out, [spec.dim], spec,
                   'face-api / dlib 128-d face recognition network; see the fer_ros_embedder metadata')


def build_landmarker(w: dict[str, np.ndarray], spec: LandmarkSpec):
    """The 68-landmark network's ONNX ModelProto (checked); see the module docstring."""
    g = _Graph()

    def separable(x: str, prefix: str, stride: int) -> str:
        depthwise = w[f'{prefix}/depthwise_filter']                  # [3, 3, C, 1]
        channels = depthwise.shape[2]
        pads = [0, 0, 1, 1] if stride == 2 else [1, 1, 1, 1]         # TF 'same' on an even size
        y = g.op('Conv', [x, g.const(prefix + '_dw', depthwise.transpose(2, 3, 0, 1))], prefix + '_dw',
                 kernel_shape=[3, 3], strides=[stride, stride], pads=pads, group=channels)
        pointwise = w[f'{prefix}/pointwise_filter'].transpose(3, 2, 0, 1)     # [O, C, 1, 1]
        return g.op('Conv', [y, g.const(prefix + '_pw', pointwise), g.const(prefix + '_b', w[f'{prefix}/bias'])],
                    prefix + '_pw', kernel_shape=[1, 1])

    x = g.normalised_input(spec.input_name)
    for block in range(4):
        prefix = f'dense{block}'
        if block == 0:
            kernel = w[f'{prefix}/conv0/filters'].transpose(3, 2, 0, 1)[:, ::-1]     # RGB-trained, BGR input
            first = g.op('Conv', [x, g.const('c0_w', kernel), g.const('c0_b', w[f'{prefix}/conv0/bias'])], 'c0',
                         kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
        else:
            first = separable(x, f'{prefix}/conv0', 2)
        outs = [g.op('Relu', [first], prefix + '_out1')]
        for k in (1, 2, 3):
            source = outs[0] if k == 1 else g.op('Relu', [_sum(g, outs, prefix)], f'{prefix}_in{k + 1}')
            outs.append(separable(source, f'{prefix}/conv{k}', 1))
        x = g.op('Relu', [_sum(g, outs, prefix)], prefix + '_out')
    x = g.op('AveragePool', [x], 'pool', kernel_shape=[7, 7], strides=[2, 2])
    x = g.op('Flatten', [x], 'flat')
    x = g.op('Add', [g.op('MatMul', [x, g.const('fc_w', w['fc/weights'])], 'fc'), g.const('fc_b', w['fc/bias'])],
             'fc_bias')
    out = g.op('Reshape', [x, g.const('shape', np.array([-1, spec.points, 2], np.int64))], 'points')
    return g.model('face_api_landmarks_68', spec.input_name, spec.size, out, [spec.points, 2], spec,
                   'face-api 68-point face landmarks; see the fer_ros_landmarks metadata')


def _sum(g: _Graph, terms: list[str], prefix: str) -> str:
    total = terms[0]
    for term in terms[1:]:
        total = g.op('Add', [total, term], prefix + '_sum')
    return total


def _shortfall(name: str) -> tuple[int, int]:
    """(rows, cols) the strided conv of residual ``name`` lacks against its 2x2 pool, for a 150 px input:
    150 -conv7/2-> 72 -pool3/2-> 35; down: conv3/2 (n-3)//2+1 vs pool n//2: 35->17|17, 17->8|8, 8->3|4, 4->1|2."""
    side = (((150 - 7) // 2 + 1) - 3) // 2 + 1
    for layer, _, down in RESIDUALS:
        if down:
            conv_side, pool_side = (side - 3) // 2 + 1, side // 2
            if layer == name:
                return pool_side - conv_side, pool_side - conv_side
            side = pool_side
    raise ValueError(f'{name} is not a downsampling layer')


def fetch_tarball(cache_dir: str) -> str:
    """The pinned npm tarball in ``cache_dir`` (``npm pack`` fetches it when it is not there yet), sha256-checked.

    Raises:
        FileNotFoundError: no tarball and no ``npm`` to fetch it (the message says what to do).
        ValueError: the tarball's sha256 is not the pinned one. subprocess.CalledProcessError: npm failed.
    """
    path = os.path.join(cache_dir, TARBALL)
    if not os.path.isfile(path):
        npm = shutil.which('npm')
        if npm is None:
            raise FileNotFoundError(f'{path} is missing and npm is not installed to fetch it: install npm, or run '
                                    f'`npm pack {PACKAGE}@{VERSION}` elsewhere and copy the file there')
        os.makedirs(cache_dir, exist_ok=True)
        subprocess.run([npm, 'pack', '--silent', f'{PACKAGE}@{VERSION}', '--pack-destination', cache_dir],
                       check=True, stdout=subprocess.DEVNULL)
    if sha256_file(path) != TARBALL_SHA256:
        raise ValueError(f'{path}: sha256 differs from the pinned {TARBALL_SHA256}; delete it and rerun')
    return path


def convert(tarball: str, embedder_out: str, landmarker_out: str) -> tuple[EmbedderSpec, LandmarkSpec]:
    """Read both networks from the npm ``tarball`` and write their ONNX models atomically."""
    tarball_sha = sha256_file(tarball)

    def provenance(net: str, weights_sha: str, licence: str, **more: str) -> dict[str, str]:
        return {'source': f'npm package {PACKAGE} {VERSION}, {os.path.basename(tarball)}:package/model/{net}.bin',
                'tarball_sha256': tarball_sha, 'weights_sha256': weights_sha, 'licence': licence, **more}

    weights, weights_sha = read_package(tarball, EMBEDDER_NET)
    embedder = EmbedderSpec(model_id=f'face-api-recognition-128/{weights_sha[:16]}', extra=provenance(
        EMBEDDER_NET, weights_sha, EMBEDDER_LICENCE,
        architecture='face-api.js FaceRecognitionNet (dlib ResNet-34-like metric network, 150x150 input)',
        input='float32[N, 3, 150, 150] BGR 0..255 (mean subtraction and /255 inside the graph)',
        output='float32[N, 128] descriptor (not normalised; dlib compares by Euclidean distance)'))
    save_onnx(build_embedder(weights, embedder), embedder_out)
    weights, weights_sha = read_package(tarball, LANDMARK_NET)
    landmarker = LandmarkSpec(extra=provenance(
        LANDMARK_NET, weights_sha, LANDMARK_LICENCE,
        architecture='face-api.js FaceLandmark68Net (4 dense blocks of separable convolutions, 112x112 input)',
        input='float32[N, 3, 112, 112] BGR 0..255: the square around a face box',
        output='float32[N, 68, 2] (x, y) fractions of the input square, iBUG 300-W point order'))
    save_onnx(build_landmarker(weights, landmarker), landmarker_out)
    return embedder, landmarker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='fer-convert-face-api', description=__doc__.split('\n\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--tarball', help=f'the npm tarball (npm pack {PACKAGE}@{VERSION})')
    source.add_argument('--fetch', metavar='CACHE_DIR', help=f'use (or npm pack) the pinned {TARBALL} in CACHE_DIR')
    parser.add_argument('--embedder-out', default='models/face_embedder_face_api.onnx', help='embedding ONNX file')
    parser.add_argument('--landmarks-out', default='models/face_landmarks_face_api.onnx', help='landmark ONNX file')
    args = parser.parse_args(argv)
    try:
        embedder, landmarker = convert(args.tarball or fetch_tarball(args.fetch), args.embedder_out,
                                       args.landmarks_out)
    except (OSError, ValueError, KeyError, tarfile.TarError, subprocess.CalledProcessError) as exc:
        print(f'fer-convert-face-api: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {args.embedder_out}: {embedder.model_id}, {embedder.dim}-d; {args.landmarks_out}: '
          f'{landmarker.points} points; from {embedder.extra["source"].rsplit(",", 1)[0]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
