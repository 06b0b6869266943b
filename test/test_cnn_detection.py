"""The libfacedetection CNN as ONNX: weights read from the yuface wheel's library FILE, the graph and its
metadata, and parity with the yuface binding (the same network compiled) on the repository's photos.

Parity tolerance (stated once, here): the binding reports boxes and landmarks as C ``short`` (truncated
towards zero) and scores as whole percent, so a face matches when every box edge and landmark is within
2 px and the score within 0.02. Faces scoring within 0.05 of the threshold may be on either side of it in
the two builds (float summation order differs) and are not required to match.
"""
from __future__ import annotations

import ctypes
import dataclasses
import glob
import os

import numpy as np
import onnx
import pytest

from fer_ros.backends import create_face_detector
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.detectors.yunet import METADATA_KEY, AnchorGrid, DetectorSpec, decode, to_network_input
from fer_ros.sample_frames import load_asset, sample_frame
from fer_ros.tools.convert_face_detector import build_model, convert
from fer_ros.tools.libfacedetection_weights import NUM_LAYERS, TABLE_SYMBOL, ElfImage, library_bytes, read_conv_layers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, 'models', 'face_detector_libfacedetection.onnx')
WHEELS = sorted(glob.glob(os.path.join(REPO, 'models', 'cache', 'yuface-*.whl')))
THRESHOLD = 0.5
BORDERLINE = 0.05
PIXELS = 2.0
SCORE = 0.02

pytestmark = pytest.mark.skipif(not (WHEELS and os.path.isfile(MODEL)),
                                reason='face detector not converted yet (make setup / scripts/fetch_face_detector.sh)')


NO_YUFACE = 'the yuface binding is not installed (its wheels: x86_64, CPython 3.10/3.11 only)'


@pytest.fixture(scope='module')
def layers():
    return read_conv_layers(library_bytes(WHEELS[-1]))


@pytest.fixture(scope='module')
def yunet():
    return create_face_detector(DetectorConfig(kind='yunet', confidence_threshold=THRESHOLD, min_face_size=1,
                                          max_faces=256, backend='cpu', full_scan_s=0.0))


@pytest.fixture(scope='module')
def yuface():
    pytest.importorskip('yuface', reason=NO_YUFACE)
    return create_face_detector(DetectorConfig(kind='yuface', confidence_threshold=THRESHOLD, min_face_size=1,
                                          max_faces=256, full_scan_s=0.0))


# --- the ELF reader ---------------------------------------------------------------------------------

def test_reads_53_layers_with_consistent_shapes(layers):
    assert len(layers) == NUM_LAYERS
    head = layers[0]
    assert (head.channels, head.num_filters, head.is_pointwise, head.with_relu) == (32, 16, True, True)
    assert head.weights.shape == (16, 32) and head.weight_symbol == 'backbone__model0_pw_weight'
    for layer in layers:
        rows = 9 if layer.is_depthwise else layer.num_filters
        assert layer.weights.shape == (rows, layer.channels) and layer.weights.dtype == np.float32
        assert layer.biases.shape == (layer.num_filters,)
        assert np.all(np.isfinite(layer.weights)) and np.abs(layer.weights).max() > 0
        assert layer.weight_symbol.endswith('_weight') and layer.bias_symbol.endswith('_bias')
    assert layers[52].weight_symbol == 'bbox_head__multi_level_kps__2_dw_weight'


def test_elf_reads_equal_the_loaded_library(layers):
    """What the file reader resolves (symbols + relocations) is what the dynamic loader made of it."""
    yuface = pytest.importorskip('yuface', reason=NO_YUFACE)
    lib = ctypes.CDLL(os.path.join(os.path.dirname(yuface.__file__), 'libfacedetection.so'))

    class ConvInfo(ctypes.Structure):
        _fields_ = [('channels', ctypes.c_int), ('num_filters', ctypes.c_int), ('is_depthwise', ctypes.c_bool),
                    ('is_pointwise', ctypes.c_bool), ('with_relu', ctypes.c_bool),
                    ('weights', ctypes.POINTER(ctypes.c_float)), ('biases', ctypes.POINTER(ctypes.c_float))]

    table = (ConvInfo * NUM_LAYERS).in_dll(lib, TABLE_SYMBOL)
    for record, layer in zip(table, layers):
        assert (record.channels, record.num_filters, record.is_depthwise, record.with_relu) == \
            (layer.channels, layer.num_filters, layer.is_depthwise, layer.with_relu)
        loaded = np.ctypeslib.as_array(record.weights, shape=(layer.weights.size,))
        assert np.array_equal(loaded, layer.weights.ravel())
        assert np.array_equal(np.ctypeslib.as_array(record.biases, shape=(layer.num_filters,)), layer.biases)


def test_elf_reader_rejects_other_files(tmp_path):
    with pytest.raises(ValueError, match='not an ELF'):
        ElfImage(b'not an elf at all' * 8, 'junk.so')
    elf = ElfImage(library_bytes(WHEELS[-1]))
    with pytest.raises(KeyError, match='no symbol'):
        elf.symbol('no_such_symbol')
    (tmp_path / 'x.whl').write_bytes(b'zip?')
    with pytest.raises(ValueError, match='not a wheel'):
        library_bytes(str(tmp_path / 'x.whl'))
    with pytest.raises(FileNotFoundError):
        library_bytes(str(tmp_path / 'missing.whl'))


def test_converter_rejects_a_changed_relu_pattern(layers):
    import dataclasses

    changed = list(layers)
    changed[30] = dataclasses.replace(layers[30], with_relu=True)      # a head with ReLU: not the v3 graph
    with pytest.raises(ValueError, match='layer 30'):
        build_model(changed, DetectorSpec())


# --- the graph and its metadata ------------------------------------------------------------------------

def test_model_metadata_and_dynamic_input():
    model = onnx.load(MODEL)
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [13]
    props = {p.key: p.value for p in model.metadata_props}
    spec = DetectorSpec.from_metadata(props, MODEL)
    assert spec.strides == (8, 16, 32) and spec.size_multiple == 32 and spec.channel_order == 'BGR'
    assert 'BSD-3' in spec.extra['licence'] and 'yuface' in spec.extra['source']
    assert spec.extra['score'] == 'sqrt(sigmoid(cls) * sigmoid(obj))' and len(spec.extra['library_sha256']) == 64
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert model.graph.input[0].name == spec.input_name and dims == ['batch', 3, 'height', 'width']
    assert {n.op_type for n in model.graph.node} <= {'Conv', 'Relu', 'MaxPool', 'Resize', 'Add', 'Concat', 'Reshape',
                                                     'Transpose', 'Sigmoid', 'Mul', 'Sqrt', 'Identity'}
    with pytest.raises(ValueError, match=METADATA_KEY):
        DetectorSpec.from_metadata({}, 'other.onnx')


def test_conversion_is_reproducible(tmp_path):
    out = tmp_path / 'det.onnx'
    convert(str(out), wheel=WHEELS[-1])
    assert onnx.load(str(out)).graph == onnx.load(MODEL).graph


def test_anchor_grid_and_padding():
    blob = to_network_input(np.full((50, 70, 3), 7, np.uint8), 32)
    assert blob.shape == (1, 3, 64, 96) and blob.dtype == np.float32
    assert blob[0, :, :50, :70].min() == 7 and blob[0, :, 50:].max() == 0 and blob[0, :, :, 70:].max() == 0
    grid = AnchorGrid(64, 96, (8, 16, 32))
    assert grid.points.shape == (8 * 12 + 4 * 6 + 2 * 3, 2)
    assert tuple(grid.points[1]) == (8, 0) and tuple(grid.points[12]) == (0, 8) and grid.strides[-1] == 32


def test_decode_and_nms_on_hand_made_outputs():
    grid = AnchorGrid(32, 32, (8, 16, 32))                 # 16 + 4 + 1 anchors
    scores = np.zeros(21, np.float32)
    boxes = np.zeros((21, 4), np.float32)
    marks = np.zeros((21, 10), np.float32)
    scores[5], scores[6], scores[20] = 0.9, 0.8, 0.7        # 5 and 6: neighbours on the stride-8 grid
    boxes[5] = boxes[6] = (0.5, 0.5, np.log(4.0), np.log(4.0))   # 32 px boxes centred 8 px apart: IoU 0.6
    marks[20] = 1.0
    found, found_scores, found_marks = decode(scores, boxes, marks, grid, 0.5, DetectorSpec())
    assert found_scores.tolist() == pytest.approx([0.9, 0.7])
    # anchor 5 = (col 1, row 1) * 8; centre = 0.5 * 8 + 8 = 12; size 4 * 8 = 32
    assert found[0].tolist() == pytest.approx([12 - 16, 12 - 16, 32, 32])
    assert found_marks[1].tolist() == pytest.approx([32.0] * 10)    # anchor 20 = (0, 0) stride 32: 1 * 32 + 0


def _greedy_nms(corners, iou_limit):
    """The suppression yunet.decode had before it used cv2.dnn.NMSBoxes (corners sorted best first)."""
    kept = []
    area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    for i in range(len(corners)):
        iw = np.minimum(corners[kept, 2], corners[i, 2]) - np.maximum(corners[kept, 0], corners[i, 0])
        ih = np.minimum(corners[kept, 3], corners[i, 3]) - np.maximum(corners[kept, 1], corners[i, 1])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        if not np.any(inter / (area[kept] + area[i] - inter) > iou_limit):
            kept.append(i)
    return kept


@pytest.mark.parametrize('threshold', [0.05, 0.3, 0.6])
def test_opencv_nms_keeps_the_faces_the_greedy_nms_kept(yunet, threshold):
    """On the real photos and sample frames, every candidate over a low threshold (many overlapping boxes):
    decode's OpenCV NMS keeps exactly the boxes libfacedetection's greedy NMS keeps."""
    network = yunet.network
    frames = [load_asset(n) for n in ('astronaut.jpg', 'camera.jpg', 'coffee.jpg')]
    frames += [sample_frame(n, seed=s)[0] for n, s in ((1, 0), (5, 0), (12, 1))]
    for frame in frames:
        blob = to_network_input(frame, network.spec.size_multiple)
        grid = AnchorGrid(blob.shape[2], blob.shape[3], network.spec.strides)
        out = network.runner.run({network.spec.input_name: blob}, network._outputs)
        scores, boxes, marks = (np.asarray(out[name])[0] for name in network._outputs)
        found, found_scores, _ = decode(scores, boxes, marks, grid, threshold, network.spec)
        # the reference on the same candidates (decode's own ordering: score, best first)
        keep = np.flatnonzero(scores >= threshold)
        keep = keep[np.argsort(-scores[keep], kind='stable')]
        s, prior = grid.strides[keep, None], grid.points[keep]
        centre, size = boxes[keep, :2] * s + prior, np.exp(boxes[keep, 2:]) * s
        corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        chosen = _greedy_nms(corners, network.spec.nms_iou)
        assert found_scores.tolist() == scores[keep][chosen].astype(np.float32).tolist()
        assert np.allclose(found[:, :2], corners[chosen, :2], atol=1e-3)


def test_missing_or_foreign_model_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match='not found'):
        create_face_detector(DetectorConfig(kind='yunet', model_path=str(tmp_path / 'none.onnx')))
    classifier = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
    if os.path.isfile(classifier):
        with pytest.raises(ValueError, match='not a fer_ros face detector'):
            create_face_detector(DetectorConfig(kind='yunet', model_path=classifier))


# --- parity with the yuface binding -----------------------------------------------------------------------

def _assert_same_faces(ours, reference, where, threshold=THRESHOLD):
    certain = [f for f in reference if f.score >= threshold + BORDERLINE]
    assert len(ours) >= len(certain), f'{where}: yunet found {len(ours)} faces, yuface {len(certain)} certain ones'
    assert len(ours) <= len(reference) + sum(f.score < threshold + BORDERLINE for f in ours), where
    for face in certain:
        match = min(ours, key=lambda o: np.abs(np.subtract(o.box, face.box)).max())
        assert np.abs(np.subtract(match.box, face.box)).max() <= PIXELS, f'{where}: {match.box} vs {face.box}'
        assert abs(match.score - face.score) <= SCORE, f'{where}: score {match.score} vs {face.score}'
        assert np.abs(match.landmarks - face.landmarks).max() <= PIXELS, f'{where}: landmarks'


@pytest.mark.parametrize('name', ['astronaut.jpg', 'camera.jpg', 'coffee.jpg'])
@pytest.mark.parametrize('max_side', [640, 320])
def test_same_faces_as_yuface_on_the_photos(yuface, name, max_side):
    image = load_asset(name)
    ours = create_face_detector(DetectorConfig(kind='yunet', max_side=max_side, confidence_threshold=0.3,
                                          min_face_size=1, backend='cpu'))
    theirs = create_face_detector(DetectorConfig(kind='yuface', max_side=max_side, confidence_threshold=0.3,
                                            min_face_size=1))
    # 0.3: coffee.jpg's best false candidate (0.36 in yuface) is compared too
    _assert_same_faces(ours.detect(image), theirs.detect(image), f'{name}@{max_side}', threshold=0.3)


@pytest.mark.parametrize('num_faces, seed', [(1, 0), (1, 1), (3, 2), (5, 0), (5, 1), (12, 0), (12, 1)])
def test_same_faces_as_yuface_on_sample_frames(yunet, yuface, num_faces, seed):
    frame, _ = sample_frame(num_faces, seed=seed)
    ours, theirs = yunet.detect(frame), yuface.detect(frame)
    assert len([f for f in ours if f.score >= 0.6]) >= num_faces
    _assert_same_faces(ours, theirs, f'{num_faces} faces seed {seed}')


def test_any_frame_size_is_padded_not_resized(yunet, yuface):
    frame, _ = sample_frame(3, seed=4)
    odd = np.ascontiguousarray(frame[7:470, 3:611])        # 463 x 608: not multiples of 32
    _assert_same_faces(yunet.detect(odd), yuface.detect(odd), 'odd size')


# --- the same runtime layer as the classifier: ONNX Runtime CPU, TensorRT / CUDA providers --------------

def test_tensorrt_provider_options_create_the_cache_and_place_the_timing_cache(tmp_path):
    """ONNX Runtime's TensorRT provider creates only the last level of its cache path and fails to start
    without the rest (on a fresh robot: ~/.cache/fer_ros/engines); its timing cache had no path at all, so
    it landed in the node's working directory."""
    from fer_ros.backends.onnxruntime_backend import tensorrt_provider_options

    fresh = tmp_path / 'home' / '.cache' / 'fer_ros' / 'engines'
    options = tensorrt_provider_options('image', (1, 3, 32, 32), (1, 3, 480, 640), (1, 3, 640, 640), str(fresh))
    folder = fresh / 'onnxruntime-tensorrt'
    assert folder.is_dir()                                               # every level created
    assert options['trt_profile_min_shapes'] == 'image:1x3x32x32'
    assert options['trt_profile_opt_shapes'] == 'image:1x3x480x640'
    assert options['trt_profile_max_shapes'] == 'image:1x3x640x640'
    assert options['trt_engine_cache_enable'] == 'True' and options['trt_engine_cache_path'] == str(folder)
    assert options['trt_timing_cache_enable'] == 'True' and options['trt_timing_cache_path'] == str(folder)
    assert options['trt_fp16_enable'] == 'True'
    fp32 = tensorrt_provider_options('image', (1,), (1,), (1,), str(fresh), precision='fp32')
    assert fp32['trt_fp16_enable'] == 'False'
    with pytest.raises(ValueError, match="int8: use backend 'tensorrt'"):
        tensorrt_provider_options('image', (1,), (1,), (1,), str(fresh), precision='int8')
    blocked = tmp_path / 'file'
    blocked.write_text('x')
    from fer_ros.backends import BackendError
    with pytest.raises(BackendError, match='cannot create the TensorRT engine cache folder .*engine_cache_dir'):
        tensorrt_provider_options('image', (1,), (1,), (1,), str(blocked / 'engines'))


def test_the_classifier_on_the_tensorrt_provider_gets_a_cache_and_a_batch_profile(tmp_path):
    """The classifier asked ONNX Runtime's TensorRT provider for no options: no engine cache, an engine rebuilt at
    every start and for every larger batch."""
    from fer_ros.backends.onnxruntime_backend import classifier_provider_options

    classifier = os.path.join(REPO, 'models', 'mini_xception_fer2013.onnx')
    options = classifier_provider_options(classifier, 16, str(tmp_path / 'c'), 'fp32')['TensorrtExecutionProvider']
    assert options['trt_profile_min_shapes'] == 'input:1x1x64x64'
    assert options['trt_profile_opt_shapes'] == 'input:4x1x64x64'
    assert options['trt_profile_max_shapes'] == 'input:16x1x64x64'
    assert options['trt_engine_cache_path'] == str(tmp_path / 'c' / 'onnxruntime-tensorrt')
    assert options['trt_fp16_enable'] == 'False'


def test_the_detector_engine_follows_the_cache_folder_the_precision_and_the_roi_crops():
    """The detector ignored tensorrt_engine_cache_dir, was always fp16, and its profile stopped at
    detector_max_side although ROI crops (roi_scale x roi_face_px) can be larger."""
    from fer_ros.backends import DetectorEngineSettings
    from fer_ros.core.backend_options import BackendOptions

    default = DetectorEngineSettings.of(DetectorConfig(), BackendOptions(), 'image')
    assert (default.precision, default.cache_dir, default.side_limit) == ('fp16', None, 640)
    chosen = DetectorEngineSettings.of(DetectorConfig(), BackendOptions(precision='fp32', engine_cache_dir='/e'),
                                       'image')
    assert (chosen.precision, chosen.cache_dir) == ('fp32', '/e')
    assert DetectorEngineSettings.of(DetectorConfig(), BackendOptions(precision='int8'), 'image').precision == 'fp16'
    big_rois = DetectorConfig(max_side=320, roi_scale=8.0, roi_face_px=512)
    assert DetectorEngineSettings.of(big_rois, BackendOptions(), 'image').side_limit == 4128 >= 8 * 512 + 1
    # every crop the detector can make fits the limit: the largest ROI window of a big face, and a whole frame
    detector = create_face_detector(dataclasses.replace(big_rois, backend='cpu'))
    ((x0, y0, x1, y1), scale), = detector.roi_windows([(100.0, 100.0, 900.0, 900.0)], 8000, 8000)
    assert max(x1 - x0, y1 - y0) * scale <= big_rois.input_side_limit


def test_inputs_beyond_the_engine_profile_are_downscaled_with_one_warning(caplog):
    """detector_max_side raised at run time past the profile the engine was built for: the detector keeps
    finding faces on inputs scaled to fit (here a real CPU runner given the engine's limit)."""
    detector = create_face_detector(DetectorConfig(kind='yunet', backend='cpu', max_side=1024))
    detector.input_limit = 320
    seen = []
    runner = detector.network.runner
    real_run = runner.run

    def recording_run(feeds, names):
        seen.append(next(iter(feeds.values())).shape)
        return real_run(feeds, names)
    runner.run = recording_run
    frame, _ = sample_frame(1, size=(1024, 768), seed=3)
    with caplog.at_level('WARNING'):
        assert len(detector.detect(frame)) == 1
        assert len(detector.detect(frame)) == 1
    assert seen and all(max(shape[2:]) <= 320 for shape in seen), seen
    assert sum('exceeds the 320 px' in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize('choice', ['tensorrt', 'tensorrt-ep'])
def test_detector_on_tensorrt_matches_the_cpu(tmp_path, choice):
    from fer_ros.backends.selection import probe_machine
    from fer_ros.core.backend_options import BackendOptions

    if not probe_machine().usable(choice):
        pytest.skip(f'{choice} cannot run here: {probe_machine().why_not(choice, brief=True)}')
    options = BackendOptions(engine_cache_dir=str(tmp_path), precision='fp16')
    gpu = create_face_detector(DetectorConfig(kind='yunet', backend=choice, confidence_threshold=THRESHOLD), options)
    cpu = create_face_detector(DetectorConfig(kind='yunet', backend='cpu', confidence_threshold=THRESHOLD))
    assert gpu.device.startswith(('GPU', 'CUDA'))
    for num_faces, size in ((1, (640, 480)), (5, (640, 480)), (3, (320, 240))):     # shapes inside the profile
        frame, _ = sample_frame(num_faces, size=size, seed=1)
        _assert_same_faces(gpu.detect(frame), cpu.detect(frame), f'{choice} {num_faces} faces {size}')
    assert any(tmp_path.rglob('*')), 'no engine written to the cache'
    gpu.network.runner.close()
