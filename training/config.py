"""Training configuration: nested dataclasses loaded from YAML, validated once.

Every value has a default (the paper's where it gives one, Table 4); a YAML file overrides any
subset, and ``--set section.key=value`` on the command line overrides the file. Unknown keys and
out-of-range values raise ``ValueError`` naming the parameter (``data.path``, ``optim.lr``, ...). Choices
and ranges are declared on the fields with fer_ros's own vocabulary (``fer_ros.core.validate.setting``,
checked by ``check_fields``), like every fer_ros config; this module adds only reading YAML into the
sections and the rules that involve several fields.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from fer_ros.core.validate import check_fields, setting

FORMATS = ('fer2013', 'ckplus', 'jaffe', 'folder', 'synthetic')
CROPS = ('none', 'center', 'detect')
SPLIT_MODES = ('official', 'random', 'subject')
FILLS = ('random', 'constant')
AMP_MODES = ('off', 'fp16', 'bf16')


@dataclass
class ModelConfig:
    """name: a registered model (fer_ros.models.list_models()). in_channels: 3 (RGB; gray images are
    replicated, the paper's 48x48x3) or 1. kwargs: constructor overrides (e.g. drop_rate)."""

    name: str = 'light_ntwrn'
    in_channels: int = setting(3, choices=(1, 3))
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the images are and how they become model inputs.

    format: fer2013 (csv), ckplus (cohn-kanade-images + Emotion, or folder-per-class export),
        jaffe (KA.AN1.39.tiff names), folder (root/<label>/* or root/<split>/<label>/*), synthetic.
    path: csv file or root folder (relative paths are relative to the working directory).
    input_size: model input side in pixels (paper: 48).
    mean, std: per-channel normalisation of pixel/255 (recorded in the checkpoint and the ONNX file);
        empty: 0.5 for every channel, i.e. inputs in [-1, 1].
    crop: none (resize whole image), center (central square), detect (face detector + square crop
        with ``crop_margin``, exactly as the fer_ros node crops faces at run time).
    face_box: (x0, y0, x1, y1) fractions of the crop where the face is, for images that are already
        face crops (crop none/center); the improved random erasing anchors inside it.
    ignore_labels: dataset labels with no class here that are dropped (and counted, printed);
        any other unknown label is an error.
    subject_pattern: folder format: regex whose first group is the subject id, searched in the
        file name (e.g. '^(S\\d+)_' for CK+ exports); needed for subject-independent splits.
    ckplus_peak_frames: CK+ raw layout: last frames of each labelled sequence used as the label.
    ckplus_neutral_first: CK+ raw layout: also use each sequence's first frame as 'neutral'.
    synthetic_per_class: synthetic format: images per class.
    """

    format: str = setting('fer2013', choices=FORMATS)
    path: str = ''
    input_size: int = setting(48, low=8, high=1024)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    crop: str = setting('none', choices=CROPS)
    crop_margin: float = setting(0.2, low=0.0, high=2.0)
    face_box: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.0, 1.0])
    ignore_labels: list[str] = field(default_factory=lambda: ['contempt'])
    subject_pattern: str = ''
    ckplus_peak_frames: int = setting(3, low=1)
    ckplus_neutral_first: bool = False
    synthetic_per_class: int = setting(100, low=2)


@dataclass
class SplitConfig:
    """official: the dataset's own split (FER2013 Usage; folder train/val/test dirs).
    random: stratified random split, ``test_fraction`` of the images to test (paper: 70/30).
    subject: subject-independent split, whole subjects go to test until ``test_fraction`` of the
        images is reached (CK+/JAFFE; random splits there put the same person in train and test).
    val_fraction: share of the training part held out for model selection (0: none)."""

    mode: str = setting('random', choices=SPLIT_MODES)
    test_fraction: float = setting(0.3, low=0.0, high=1.0, low_open=True)   # < 1: Config.validate
    val_fraction: float = setting(0.0, low=0.0, high=1.0)                   # < 1: Config.validate
    seed: int = 0


@dataclass
class ErasingConfig:
    """Improved random erasing (paper Sec. 3.2, Table 2): probability p, area fraction
    U(sl, sh) of the image, aspect ratio U(r1, 1/r1), anchor inside the face box (eq. 12).
    fill: random (uniform noise, Zhong et al.'s best) or constant ``fill_value`` (pixel/255)."""

    enabled: bool = True
    p: float = setting(0.5, low=0.0, high=1.0)
    sl: float = setting(0.05, low=0.0, high=1.0, low_open=True)   # sl <= sh < 1: Config.validate
    sh: float = setting(0.3, low=0.0, high=1.0, low_open=True)
    r1: float = setting(0.3, low=0.0, high=1.0, low_open=True)
    fill: str = setting('random', choices=FILLS)
    fill_value: float = setting(0.5, low=0.0, high=1.0)
    max_attempts: int = setting(100, low=1)


@dataclass
class ExpansionConfig:
    """The paper's JAFFE expansion: every training image is used ``repeats`` times per epoch, each
    time rotated (+-rotation degrees), scaled (U(scale)), shifted (+-shift of the side), cropped (a
    random window of U(crop, 1) of the side, resized back), flipped (probability flip) and given a
    contrast factor U(contrast)."""

    enabled: bool = False
    repeats: int = setting(1, low=1)
    rotation: float = setting(10.0, low=0.0, high=180.0)
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    shift: float = setting(0.1, low=0.0, high=1.0)                 # < 1: Config.validate
    crop: float = setting(0.9, low=0.0, high=1.0, low_open=True)
    flip: float = setting(0.5, low=0.0, high=1.0)
    contrast: list[float] = field(default_factory=lambda: [0.8, 1.2])


@dataclass
class AugmentConfig:
    erasing: ErasingConfig = field(default_factory=ErasingConfig)
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)


@dataclass
class OptimConfig:
    """SGD (paper Table 4: lr 0.01, momentum 0.9, halved every 50 epochs). weight_decay is not in
    the paper; 5e-4 is the wide-residual-network default."""

    lr: float = setting(0.01, low=0.0, low_open=True)
    momentum: float = setting(0.9, low=0.0, high=1.0)              # < 1: Config.validate
    weight_decay: float = setting(5e-4, low=0.0)
    nesterov: bool = False
    step_size: int = setting(50, low=1)
    gamma: float = setting(0.5, low=0.0, high=1.0, low_open=True)


@dataclass
class TrainConfig:
    """epochs/batch_size: paper Table 4 (300; 30 FER2013, 20 CK+, 40 JAFFE). batch_size is per
    process: under torchrun the global batch is batch_size * WORLD_SIZE.
    device: auto (CUDA if available), cpu, cuda, cuda:N. amp: off | fp16 | bf16 (CUDA only).
    workers: DataLoader worker processes. output: run folder (checkpoints, metrics, plots).
    deterministic: also make CUDA kernels deterministic (slower; CPU runs are deterministic anyway).
    threads: torch CPU threads (0: torch's default). eval_every: evaluate every N epochs (and last)."""

    epochs: int = setting(300, low=1)
    batch_size: int = setting(30, low=1)
    eval_batch_size: int = setting(256, low=1)
    workers: int = setting(2, low=0)
    seed: int = 0
    device: str = 'auto'
    amp: str = setting('off', choices=AMP_MODES)
    channels_last: bool = False
    sync_bn: bool = False
    eval_every: int = setting(1, low=1)
    deterministic: bool = False
    output: str = 'runs/train'
    progress: bool = True
    threads: int = setting(0, low=0)        # 0: torch's default


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sections(self) -> list[tuple[str, Any]]:
        """(dotted name, section) of every section holding parameters, in file order."""
        return [('model', self.model), ('data', self.data), ('split', self.split),
                ('augment.erasing', self.augment.erasing), ('augment.expansion', self.augment.expansion),
                ('optim', self.optim), ('train', self.train)]

    def validate(self) -> 'Config':
        """Raise ValueError naming the first bad parameter; return self.

        Each field's choices or range are declared on it (``setting``: fer_ros.core.validate, the vocabulary
        of every fer_ros config); what depends on more than one field is checked here.
        """
        for name, section in self.sections():
            try:
                check_fields(section, name)
            except ValueError as exc:
                raise ValueError(f'config: {exc}') from None
        m, d, s, e, x, o, t = (self.model, self.data, self.split, self.augment.erasing,
                               self.augment.expansion, self.optim, self.train)
        _check(d.format == 'synthetic' or bool(d.path), 'data.path', d.path, 'is required')
        d.mean = d.mean or [0.5] * m.in_channels
        d.std = d.std or [0.5] * m.in_channels
        for name, vals in (('data.mean', d.mean), ('data.std', d.std)):
            _check(len(vals) == m.in_channels, name, vals,
                   f'needs one value per channel (model.in_channels={m.in_channels})')
        _check(all(v > 0 for v in d.std), 'data.std', d.std, 'values must be > 0')
        fb = d.face_box
        _check(len(fb) == 4 and 0 <= fb[0] < fb[2] <= 1 and 0 <= fb[1] < fb[3] <= 1, 'data.face_box',
               fb, 'must be [x0, y0, x1, y1] fractions with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1')
        _check(s.test_fraction < 1, 'split.test_fraction', s.test_fraction, 'must be in (0, 1)')
        _check(s.val_fraction < 1, 'split.val_fraction', s.val_fraction, 'must be in [0, 1)')
        _check(e.sl <= e.sh < 1, 'augment.erasing.sl/sh', (e.sl, e.sh), 'need 0 < sl <= sh < 1')
        _check(len(x.scale) == 2 and 0 < x.scale[0] <= x.scale[1], 'augment.expansion.scale', x.scale,
               'must be [low, high] with 0 < low <= high')
        _check(x.shift < 1, 'augment.expansion.shift', x.shift, 'must be in [0, 1)')
        _check(len(x.contrast) == 2 and 0 <= x.contrast[0] <= x.contrast[1], 'augment.expansion.contrast',
               x.contrast, 'must be [low, high] with 0 <= low <= high')
        _check(o.momentum < 1, 'optim.momentum', o.momentum, 'must be in [0, 1)')
        _check(not o.nesterov or o.momentum > 0, 'optim.nesterov', o.nesterov, 'needs momentum > 0')
        _check(t.device == 'auto' or t.device == 'cpu' or t.device.startswith('cuda'), 'train.device',
               t.device, "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        _check(bool(t.output), 'train.output', t.output, 'is required')
        return self


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f'config: {name}={value!r} {rule}')


def _merge(obj: Any, data: dict[str, Any], prefix: str) -> None:
    """Copy ``data`` into dataclass ``obj`` recursively, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ValueError(f'config: {prefix or "top level"} must be a mapping, got {type(data).__name__}')
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        name = f'{prefix}{key}'
        if key not in fields:
            raise ValueError(f'config: unknown parameter {name!r}; known in this section: {sorted(fields)}')
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f'{name}.')
        else:
            setattr(obj, key, _coerce(current, value, name))


def _coerce(current: Any, value: Any, name: str) -> Any:
    """Match the default's type (YAML '1e-3' is a string, 5 for a float is fine, ...)."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false', '1', '0', 'yes', 'no'):
            return value.lower() in ('true', '1', 'yes')
        raise ValueError(f'config: {name}={value!r} must be true or false')
    if isinstance(current, (int, float)):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if isinstance(current, int):
                if number != int(number):
                    raise ValueError
                return int(number)
            return number
        except (TypeError, ValueError, OverflowError):
            kind = 'an integer' if isinstance(current, int) else 'a number'
            raise ValueError(f'config: {name}={value!r} must be {kind}') from None
    if isinstance(current, str):
        if value is None:
            return ''
        if isinstance(value, bool):  # YAML 1.1 reads unquoted off/on/no/yes as booleans
            return 'on' if value else 'off'
        if not isinstance(value, (str, int, float)):
            raise ValueError(f'config: {name}={value!r} must be a string')
        return str(value)
    if isinstance(current, list):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'config: {name}={value!r} must be a list')
        return list(value)
    if isinstance(current, dict):
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ValueError(f'config: {name}={value!r} must be a mapping')
        return dict(value)
    return value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings (value parsed as YAML) to ``cfg``."""
    for item in overrides or []:
        if '=' not in item:
            raise ValueError(f'--set {item!r}: expected section.key=value')
        dotted, raw = item.split('=', 1)
        keys = dotted.strip().split('.')
        nested: Any = yaml.safe_load(raw) if raw.strip() else ''
        for key in reversed(keys):
            nested = {key: nested}
        _merge(cfg, nested, '')
    return cfg


def load_config(path: str | None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file at ``path`` (if given) <- ``overrides``; validated.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a YAML syntax error, an unknown key or a bad value (the message names it).
    """
    cfg = Config()
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'config file not found: {path}')
        with open(path, encoding='utf-8') as f:
            try:
                data = yaml.safe_load(f) or {}
            except yaml.YAMLError as exc:
                raise ValueError(f'{path}: not valid YAML ({exc})') from exc
        try:
            _merge(cfg, data, '')
        except ValueError as exc:
            raise ValueError(f'{path}: {exc}') from None
    apply_overrides(cfg, overrides or [])
    return cfg.validate()


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a validated Config from ``Config.to_dict()`` output (e.g. stored in a checkpoint)."""
    cfg = Config()
    _merge(cfg, data, '')
    return cfg.validate()
