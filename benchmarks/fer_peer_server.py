"""The `fer` library (the peer) as a benchmark server; runs inside the peer venv (benchmarks/setup_peer.sh).

    python fer_peer_server.py FRAMES.npz

Loads the frames (one uint8[N, H, W, 3] BGR array per case), prints ``READY {versions}``, then for each
stdin line "VARIANT CASE COUNT" times ``FER.detect_emotions`` on COUNT frames (cycling through the
case's frames) and answers one JSON line {"ms": [...], "faces": [...]}. VARIANT: 'tflite' (fer's
default) or 'keras'.
"""
import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
warnings.filterwarnings('ignore')
import fer
import numpy as np
import tensorflow as tf
from fer.fer import FER

logging.getLogger('fer').setLevel(logging.ERROR)
data = np.load(sys.argv[1])
frames = {case: data[case] for case in data.files}
# FER caches its model per class, so each variant gets its own class
variants = {'tflite': type('FerTflite', (FER,), {})(), 'keras': type('FerKeras', (FER,), {})(use_tflite=False)}
position = {}
print('READY ' + json.dumps({'fer': fer.__version__, 'tensorflow': tf.__version__}), flush=True)
for line in sys.stdin:
    variant, case, count = line.split()
    detector, images = variants[variant], frames[case]
    times, faces = [], []
    for _ in range(int(count)):
        i = position[case] = position.get(case, -1) + 1
        t0 = time.perf_counter()
        found = detector.detect_emotions(images[i % len(images)])
        times.append((time.perf_counter() - t0) * 1e3)
        faces.append(len(found))
    print(json.dumps({'ms': times, 'faces': faces}), flush=True)
