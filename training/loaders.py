"""PyTorch side of the data: a Dataset over a FaceSet split and the DataLoaders.

Training samples get their own NumPy generator seeded with (seed, epoch, sample index), so the
augmentation a sample receives does not depend on worker count, process count or on whether the
run was resumed. Training batches come from a DistributedSampler (shuffled with seed + epoch; one
shard per process under torchrun, the whole set otherwise); evaluation shards are disjoint slices.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from training.augment import Expansion, ImprovedRandomErasing, normalize
from training.config import Config
from training.datasets import FaceSet
from training.distributed import DistInfo


class FaceDataset(Dataset):
    """Items: (float32[C, S, S] normalised image, int label index into EXPRESSIONS).

    With ``train=True`` the configured expansion (each image ``repeats`` times per epoch) and
    improved random erasing apply; set ``epoch`` before iterating (the loaders are rebuilt per epoch
    by worker processes that copy it).
    """

    def __init__(self, faces: FaceSet, indices: np.ndarray, cfg: Config, train: bool) -> None:
        self.images = faces.images
        self.labels = faces.labels
        self.boxes = faces.boxes
        self.indices = np.asarray(indices, np.int64)
        self.train = train
        aug = cfg.augment
        self.erasing = ImprovedRandomErasing(aug.erasing) if train and aug.erasing.enabled else None
        self.expansion = Expansion(aug.expansion) if train and aug.expansion.enabled else None
        self.repeats = aug.expansion.repeats if self.expansion is not None else 1
        self.mean = np.asarray(cfg.data.mean, np.float32)
        self.std = np.asarray(cfg.data.std, np.float32)
        self.seed = cfg.train.seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices) * self.repeats

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        i = int(self.indices[k % len(self.indices)])
        img, box = self.images[i], self.boxes[i]
        if self.erasing is None and self.expansion is None:
            x = img.astype(np.float32) / 255.0
        else:
            rng = np.random.default_rng([self.seed, self.epoch, k])
            if self.expansion is not None:
                x, box = self.expansion(img, box, rng)
            else:
                x = img.astype(np.float32) / 255.0
            if self.erasing is not None:
                x = self.erasing(x, box, rng)
        return torch.from_numpy(normalize(x, self.mean, self.std)), int(self.labels[i])


def train_loader(faces: FaceSet, indices: np.ndarray, cfg: Config, info: DistInfo
                 ) -> tuple[DataLoader, FaceDataset, DistributedSampler]:
    ds = FaceDataset(faces, indices, cfg, train=True)
    sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.train.seed, drop_last=False)
    per_rank = len(sampler)
    loader = DataLoader(ds, batch_size=cfg.train.batch_size, sampler=sampler,
                        num_workers=cfg.train.workers, pin_memory=info.device.type == 'cuda',
                        # a last batch of 1 would break BatchNorm; keep it when it is all there is
                        drop_last=per_rank > cfg.train.batch_size, persistent_workers=False)
    return loader, ds, sampler


def eval_loader(faces: FaceSet, indices: np.ndarray, cfg: Config, info: DistInfo) -> DataLoader:
    """This process's disjoint slice of ``indices`` (every image evaluated exactly once overall)."""
    ds = FaceDataset(faces, np.asarray(indices)[info.rank::info.world_size], cfg, train=False)
    return DataLoader(ds, batch_size=cfg.train.eval_batch_size, shuffle=False,
                      num_workers=min(cfg.train.workers, 2), pin_memory=info.device.type == 'cuda')
