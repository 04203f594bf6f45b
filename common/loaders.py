"""A run's data loaders: the training and validation sets split over the data-parallel
processes, with the sample order of each epoch and the position inside it.

    loaders = RunLoaders(train_set, val_set, cfg, dist, device)
    loaders.set_epoch(epoch)                               # datasets draw this epoch's crops
    for noisy, clean in loaders.train(epoch, samples_done): ...   # the rest of the epoch
    for noisy, clean in loaders.val() or (): ...

Exact mid-epoch resume: the sampler order and the DataLoader worker seeds depend only on
(seed, epoch), so skipping the `samples_done` samples a checkpoint recorded replays the same
batches. This is exact when dataset items are a function of (index, epoch), which the project's
datasets guarantee through `set_epoch`.

Batch size: `TrainConfig.batch_size` is the effective batch over all processes; each takes
`batch_size // world_size`. Validation gives each rank every world_size-th item, without the
padding DistributedSampler adds, so summed metrics count every item exactly once.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from common.config import TrainConfig
from common.distributed import DistInfo
from common.errors import UserError


class RunLoaders:
    """The DataLoaders of one run in one process (see the module docstring)."""

    def __init__(
        self,
        train_set: Dataset,
        val_set: Dataset | None,
        cfg: TrainConfig,
        dist: DistInfo,
        device: torch.device,
    ) -> None:
        self.train_set, self.val_set, self.cfg, self.dist = train_set, val_set, cfg, dist
        self.pin_memory = device.type == "cuda"
        if cfg.batch_size % dist.world_size:
            raise UserError(
                f"train.batch_size={cfg.batch_size} is the effective batch over "
                f"{dist.world_size} processes and must be divisible by it; use e.g. "
                f"{cfg.batch_size // dist.world_size * dist.world_size or dist.world_size}"
            )
        self.per_rank_batch = cfg.batch_size // dist.world_size
        steps = len(train_set) // dist.world_size // self.per_rank_batch
        if steps < 1:
            raise UserError(
                f"training set has {len(train_set)} items, fewer than one batch of "
                f"{cfg.batch_size}; lower train.batch_size or add data"
            )
        self.steps_per_epoch = steps

    def _generator(self, epoch: int, salt: int = 0) -> torch.Generator:
        # Worker seeds come from this generator instead of the global RNG, so they depend on
        # (seed, epoch) alone and a resumed run sees the same ones.
        g = torch.Generator()
        g.manual_seed(self.cfg.seed * 100_003 + epoch * 2 + salt)
        return g

    def set_epoch(self, epoch: int) -> None:
        """Tell the datasets the epoch (their crops and mixtures are a function of it)."""
        for ds in (self.train_set, self.val_set):
            if ds is not None and hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    def train(self, epoch: int, samples_done: int = 0) -> DataLoader:
        """The rest of `epoch` after the `samples_done` (effective-batch) samples already used."""
        sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=self.cfg.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)[samples_done // self.dist.world_size :]
        return DataLoader(
            self.train_set,
            batch_size=self.per_rank_batch,
            sampler=indices,
            drop_last=True,
            num_workers=self.cfg.num_workers,
            pin_memory=self.pin_memory,
            generator=self._generator(epoch),
        )

    def val(self) -> DataLoader | None:
        """This rank's shard of the validation set (None without one)."""
        if self.val_set is None or len(self.val_set) == 0:
            return None
        shard = Subset(self.val_set, range(self.dist.rank, len(self.val_set), self.dist.world_size))
        return DataLoader(
            shard,
            batch_size=self.cfg.val_batch_size or self.per_rank_batch,
            shuffle=False,
            num_workers=min(self.cfg.num_workers, max(len(shard), 1)),
            pin_memory=self.pin_memory,
            generator=self._generator(0, salt=1),
        )
