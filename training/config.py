"""Training configuration: nested dataclasses loaded from YAML, validated once.

Every value has a default (the paper's where it gives one, Table 4); a YAML file overrides any
subset, and ``--set section.key=value`` on the command line overrides the file. Unknown keys and
out-of-range values raise ``ValueError`` naming the parameter (``data.path``, ``optim.lr``, ...).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

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
    in_channels: int = 3
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

    format: str = 'fer2013'
    path: str = ''
    input_size: int = 48
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    crop: str = 'none'
    crop_margin: float = 0.2
    face_box: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.0, 1.0])
    ignore_labels: list[str] = field(default_factory=lambda: ['contempt'])
    subject_pattern: str = ''
    ckplus_peak_frames: int = 3
    ckplus_neutral_first: bool = False
    synthetic_per_class: int = 100


@dataclass
class SplitConfig:
    """official: the dataset's own split (FER2013 Usage; folder train/val/test dirs).
    random: stratified random split, ``test_fraction`` of the images to test (paper: 70/30).
    subject: subject-independent split, whole subjects go to test until ``test_fraction`` of the
        images is reached (CK+/JAFFE; random splits there put the same person in train and test).
    val_fraction: share of the training part held out for model selection (0: none)."""

    mode: str = 'random'
    test_fraction: float = 0.3
    val_fraction: float = 0.0
    seed: int = 0


@dataclass
class ErasingConfig:
    """Improved random erasing (paper Sec. 3.2, Table 2): probability p, area fraction
    U(sl, sh) of the image, aspect ratio U(r1, 1/r1), anchor inside the face box (eq. 12).
    fill: random (uniform noise, Zhong et al.'s best) or constant ``fill_value`` (pixel/255)."""

    enabled: bool = True
    p: float = 0.5
    sl: float = 0.05
    sh: float = 0.3
    r1: float = 0.3
    fill: str = 'random'
    fill_value: float = 0.5
    max_attempts: int = 100


@dataclass
class ExpansionConfig:
    """The paper's JAFFE expansion: every training image is used ``repeats`` times per epoch, each
    time rotated (+-rotation degrees), scaled (U(scale)), shifted (+-shift of the side), cropped (a
    random window of U(crop, 1) of the side, resized back), flipped (probability flip) and given a
    contrast factor U(contrast)."""

    enabled: bool = False
    repeats: int = 1
    rotation: float = 10.0
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    shift: float = 0.1
    crop: float = 0.9
    flip: float = 0.5
    contrast: list[float] = field(default_factory=lambda: [0.8, 1.2])


@dataclass
class AugmentConfig:
    erasing: ErasingConfig = field(default_factory=ErasingConfig)
    expansion: ExpansionConfig = field(default_factory=ExpansionConfig)


@dataclass
class OptimConfig:
    """SGD (paper Table 4: lr 0.01, momentum 0.9, halved every 50 epochs). weight_decay is not in
    the paper; 5e-4 is the wide-residual-network default."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    step_size: int = 50
    gamma: float = 0.5


@dataclass
class TrainConfig:
    """epochs/batch_size: paper Table 4 (300; 30 FER2013, 20 CK+, 40 JAFFE). batch_size is per
    process: under torchrun the global batch is batch_size * WORLD_SIZE.
    device: auto (CUDA if available), cpu, cuda, cuda:N. amp: off | fp16 | bf16 (CUDA only).
    workers: DataLoader worker processes. output: run folder (checkpoints, metrics, plots).
    deterministic: also make CUDA kernels deterministic (slower; CPU runs are deterministic anyway).
    threads: torch CPU threads (0: torch's default). eval_every: evaluate every N epochs (and last)."""

    epochs: int = 300
    batch_size: int = 30
    eval_batch_size: int = 256
    workers: int = 2
    seed: int = 0
    device: str = 'auto'
    amp: str = 'off'
    channels_last: bool = False
    sync_bn: bool = False
    eval_every: int = 1
    deterministic: bool = False
    output: str = 'runs/train'
    progress: bool = True
    threads: int = 0


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

    def validate(self) -> 'Config':
        """Raise ValueError naming the first bad parameter; return self."""
        m, d, s, e, x, o, t = (self.model, self.data, self.split, self.augment.erasing,
                               self.augment.expansion, self.optim, self.train)
        _check(m.in_channels in (1, 3), 'model.in_channels', m.in_channels, 'must be 1 or 3')
        _check(d.format in FORMATS, 'data.format', d.format, f'must be one of {FORMATS}')
        _check(d.format == 'synthetic' or bool(d.path), 'data.path', d.path, 'is required')
        _check(8 <= d.input_size <= 1024, 'data.input_size', d.input_size, 'must be in 8..1024')
        d.mean = d.mean or [0.5] * m.in_channels
        d.std = d.std or [0.5] * m.in_channels
        for name, vals in (('data.mean', d.mean), ('data.std', d.std)):
            _check(len(vals) == m.in_channels, name, vals,
                   f'needs one value per channel (model.in_channels={m.in_channels})')
        _check(all(v > 0 for v in d.std), 'data.std', d.std, 'values must be > 0')
        _check(d.crop in CROPS, 'data.crop', d.crop, f'must be one of {CROPS}')
        _check(0.0 <= d.crop_margin <= 2.0, 'data.crop_margin', d.crop_margin, 'must be in 0..2')
        fb = d.face_box
        _check(len(fb) == 4 and 0 <= fb[0] < fb[2] <= 1 and 0 <= fb[1] < fb[3] <= 1, 'data.face_box',
               fb, 'must be [x0, y0, x1, y1] fractions with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1')
        _check(d.ckplus_peak_frames >= 1, 'data.ckplus_peak_frames', d.ckplus_peak_frames, 'must be >= 1')
        _check(d.synthetic_per_class >= 2, 'data.synthetic_per_class', d.synthetic_per_class, 'must be >= 2')
        _check(s.mode in SPLIT_MODES, 'split.mode', s.mode, f'must be one of {SPLIT_MODES}')
        _check(0 < s.test_fraction < 1, 'split.test_fraction', s.test_fraction, 'must be in (0, 1)')
        _check(0 <= s.val_fraction < 1, 'split.val_fraction', s.val_fraction, 'must be in [0, 1)')
        _check(0 <= e.p <= 1, 'augment.erasing.p', e.p, 'must be in [0, 1]')
        _check(0 < e.sl <= e.sh < 1, 'augment.erasing.sl/sh', (e.sl, e.sh), 'need 0 < sl <= sh < 1')
        _check(0 < e.r1 <= 1, 'augment.erasing.r1', e.r1, 'must be in (0, 1]')
        _check(e.fill in FILLS, 'augment.erasing.fill', e.fill, f'must be one of {FILLS}')
        _check(0 <= e.fill_value <= 1, 'augment.erasing.fill_value', e.fill_value, 'must be in [0, 1]')
        _check(e.max_attempts >= 1, 'augment.erasing.max_attempts', e.max_attempts, 'must be >= 1')
        _check(x.repeats >= 1, 'augment.expansion.repeats', x.repeats, 'must be >= 1')
        _check(0 <= x.rotation <= 180, 'augment.expansion.rotation', x.rotation, 'must be in 0..180')
        _check(len(x.scale) == 2 and 0 < x.scale[0] <= x.scale[1], 'augment.expansion.scale', x.scale,
               'must be [low, high] with 0 < low <= high')
        _check(0 <= x.shift < 1, 'augment.expansion.shift', x.shift, 'must be in [0, 1)')
        _check(0 < x.crop <= 1, 'augment.expansion.crop', x.crop, 'must be in (0, 1]')
        _check(0 <= x.flip <= 1, 'augment.expansion.flip', x.flip, 'must be in [0, 1]')
        _check(len(x.contrast) == 2 and 0 <= x.contrast[0] <= x.contrast[1], 'augment.expansion.contrast',
               x.contrast, 'must be [low, high] with 0 <= low <= high')
        _check(o.lr > 0, 'optim.lr', o.lr, 'must be > 0')
        _check(0 <= o.momentum < 1, 'optim.momentum', o.momentum, 'must be in [0, 1)')
        _check(o.weight_decay >= 0, 'optim.weight_decay', o.weight_decay, 'must be >= 0')
        _check(not o.nesterov or o.momentum > 0, 'optim.nesterov', o.nesterov, 'needs momentum > 0')
        _check(o.step_size >= 1, 'optim.step_size', o.step_size, 'must be >= 1')
        _check(0 < o.gamma <= 1, 'optim.gamma', o.gamma, 'must be in (0, 1]')
        _check(t.epochs >= 1, 'train.epochs', t.epochs, 'must be >= 1')
        _check(t.batch_size >= 1, 'train.batch_size', t.batch_size, 'must be >= 1')
        _check(t.eval_batch_size >= 1, 'train.eval_batch_size', t.eval_batch_size, 'must be >= 1')
        _check(t.workers >= 0, 'train.workers', t.workers, 'must be >= 0')
        _check(t.threads >= 0, 'train.threads', t.threads, 'must be >= 0 (0: torch default)')
        _check(t.amp in AMP_MODES, 'train.amp', t.amp, f'must be one of {AMP_MODES}')
        _check(t.eval_every >= 1, 'train.eval_every', t.eval_every, 'must be >= 1')
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
