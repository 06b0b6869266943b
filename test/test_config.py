"""Choices and ranges are declared once, on the core config types, and everything else derives from them."""
from __future__ import annotations

import dataclasses
import os

import pytest

from fer_ros.core.backend_options import BACKENDS, BackendOptions
from fer_ros.core.validate import field_limits
from fer_ros.perception.detectors import DetectorConfig
from fer_ros.perception.smoothing import SmoothingConfig
from fer_ros.pipeline import PipelineConfig
from fer_ros.settings import params
from fer_ros.tools import infer
from fer_ros.util.paths import default_people_dir


def test_node_defaults_are_the_core_defaults():
    config = params.pipeline_config(params.validate_all({}))
    # the node's own defaults: it scans in the background (offline users inline: reproducible), and it keeps
    # enrolled people in a file ('' in the core: nowhere)
    assert config.people_file == os.path.join(default_people_dir(), 'people.json')
    assert dataclasses.replace(config, people_file='') == PipelineConfig(background_scan=True)


@pytest.mark.parametrize('name,config,field', [
    ('max_faces', DetectorConfig, 'max_faces'),
    ('crop_margin', PipelineConfig, 'crop_margin'),
    ('detector_full_scan_s', DetectorConfig, 'full_scan_s'),
    ('detector_idle_scan_s', DetectorConfig, 'idle_scan_s'),
    ('tensorrt_max_batch', BackendOptions, 'max_batch'),
])
def test_node_and_core_accept_and_reject_the_same_bounds(name, config, field):
    limits = field_limits(config, field)
    kind = type(limits.default)
    top = kind(limits.high)
    assert params.validate_all({name: top})[name] == top
    config(**{field: top})
    over = top + (1 if kind is int else 0.01)
    with pytest.raises(params.ParameterError, match=name):
        params.validate_all({name: over})
    with pytest.raises(ValueError, match=f'{config.__name__}.{field}'):
        config(**{field: over})


def test_backend_options_are_reachable_from_the_node():
    values = params.validate_all({'backend': 'tensorrt', 'tensorrt_precision': 'int8', 'tensorrt_max_batch': 8,
                                  'tensorrt_int8_calib_dir': '/data/faces', 'tensorrt_engine_cache_dir': '/cache',
                                  'onnxruntime_threads': 2, 'torch_device': 'cuda:1'})
    config = params.pipeline_config(values)
    assert config.backend == 'tensorrt'
    assert config.backend_options == BackendOptions(precision='int8', max_batch=8, int8_calib_dir='/data/faces',
                                                    engine_cache_dir='/cache', intra_op_threads=2,
                                                    torch_device='cuda:1')
    with pytest.raises(params.ParameterError, match='tensorrt_precision'):
        params.validate_all({'tensorrt_precision': 'fp8'})
    with pytest.raises(ValueError, match='BackendOptions.precision'):
        BackendOptions(precision='fp8')


def test_every_choice_parameter_lists_the_core_choices():
    by_field = {'backend': BACKENDS, 'detector': field_limits(DetectorConfig, 'kind').choices,
                'smoothing': field_limits(SmoothingConfig, 'method').choices}
    for name, choices in by_field.items():
        assert params.PARAMETERS_BY_NAME[name].choices == tuple(choices)


def test_clis_take_choices_and_defaults_from_the_core():
    parser = infer.build_parser()
    actions = {a.dest: a for a in parser._actions}
    assert tuple(actions['backend'].choices) == BACKENDS
    assert actions['margin'].default == PipelineConfig.crop_margin
    assert tuple(actions['detector'].choices) == field_limits(DetectorConfig, 'kind').choices
    top = field_limits(PipelineConfig, 'crop_margin').high
    assert infer.main(['--margin', str(top + 0.5), 'none.jpg']) == 2
