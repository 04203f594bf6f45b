"""The training loop: one explicit, readable solver for every model (single process or DDP).

Shape of a run (`Trainer.fit`):
    for each epoch:  set the epoch on the sampler and datasets (reproducible order and crops)
        for each batch:  warmup/cosine lr -> forward (fp16 autocast on CUDA) -> loss -> backward
                         -> unscale, clip to `grad_clip` -> optimizer step; stop between steps on
                         `max_steps` or the `max_minutes` budget (saving `last.pt` first)
        validate (loss and SI-SDR, summed over ranks) -> plateau scheduler -> best.pt / last.pt /
        epoch_NNN.pt -> history.json -> early stopping

Batch size and learning rate: `TrainConfig.batch_size` is the *effective* batch, summed over all
processes (each takes `batch_size // world_size`), and `lr` applies to that effective batch
unchanged. A run on 2 GPUs therefore follows the same optimisation path as a run on 1 GPU with
the same settings, only faster; checkpoints record world size, per-process and effective batch.

Exact resume: a checkpoint stores the epoch, the number of samples already consumed in it, the
optimizer/scheduler/scaler states, the RNG states and the history. The sampler order and the
DataLoader worker seeds depend only on (seed, epoch), so resuming mid-epoch replays the same
batches. This is exact when dataset items are a function of (index, epoch), which the project's
datasets guarantee through `set_epoch`. When a budget stops an epoch part-way, the run is
validated for the record (a history entry with "partial": true) without touching the scheduler,
best-loss tracking or early stopping, so the resumed run continues as if never interrupted.

Files (rank 0 only): `last.pt` every epoch and at a stop, `best.pt` on a new best val loss (or
at a stop when none exists yet), `epoch_NNN.pt` every `checkpoint_every` epochs, `history.json`
(`Trainer.summary()`: per-epoch train/val loss, val SI-SDR of output and input, lr, and the
stop reason: "epochs", "early_stopping", "max_steps" or "max_minutes").

Validation runs the bare model, not the DDP wrapper, on an unpadded shard per rank: DDP's
forward broadcasts buffers, a collective that deadlocks when one rank's shard has fewer batches.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from common.audio import StftConfig, istft, stft
from common.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    capture_rng_state,
    json_safe,
    load_resume_state,
    plain,
    restore_rng_state,
    save_checkpoint,
)
from common.distributed import all_reduce_sum, any_rank, barrier, dist_info
from common.env import select_device
from common.errors import UserError

SCHEDULERS = ("plateau", "cosine")
# Consecutive steps with non-finite gradients before training is declared diverged. The count
# is identical on every rank because it is read after DDP has averaged the gradients.
MAX_NONFINITE_STEPS = 50
# Steps of a session timed before a time budget may shorten the cosine schedule (the first
# steps include the data loader's start-up and would underestimate the rate).
BUDGET_RATE_MIN_STEPS = 20


@dataclass
class TrainConfig:
    """Optimisation settings; stored in every checkpoint (plain types only)."""

    epochs: int = 50
    batch_size: int = 16  # effective batch over all processes
    lr: float = 1e-3  # for the effective batch; not rescaled with the number of processes
    weight_decay: float = 1e-5
    warmup_epochs: float = 1.0  # linear warmup, per step, from lr/steps to lr
    # "plateau" (on val loss) or "cosine" (per step, after warmup). With `max_minutes` the cosine
    # is fitted to the budget from the measured step rate, so a time-limited run still ends at
    # `min_lr` instead of stopping near the peak lr of a schedule sized for `epochs`. The lr then
    # depends on the machine's speed: such runs are not bit-reproducible (`max_steps` runs are).
    scheduler: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    grad_clip: float = 5.0
    patience: int = 10  # early stopping: epochs without val-loss improvement; 0 disables
    max_minutes: float | None = None  # wall-clock budget of this session
    max_steps: int | None = None  # total optimizer steps (counting resumed ones)
    checkpoint_every: int = 5  # periodic epoch_NNN.pt every N epochs; 0 disables
    num_workers: int = 2
    val_batch_size: int | None = None  # per process; default: the per-process train batch
    seed: int = 0
    amp: bool = True  # fp16 autocast + GradScaler, used on CUDA only
    device: str = "auto"  # "auto", "cpu" or "cuda"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"TrainConfig.scheduler={self.scheduler!r}: use one of {SCHEDULERS}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"TrainConfig.{name}={getattr(self, name)}: must be at least 1")
        if not self.lr > 0:
            raise UserError(f"TrainConfig.lr={self.lr}: must be positive")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise UserError(f"TrainConfig.max_minutes={self.max_minutes}: must be positive")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _train_val_si_sdr(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-item scale-invariant SDR in dB for (B, N) batches (zero-mean, as in the metrics)."""
    ref = ref - ref.mean(dim=-1, keepdim=True)
    est = est - est.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def _model_identity(model: nn.Module) -> tuple[str, dict]:
    name = getattr(model, "name", None) or type(model).__name__
    cfg = getattr(model, "cfg", None)
    return str(name), plain(asdict(cfg)) if is_dataclass(cfg) else {}


@dataclass
class _EpochTotals:
    """Running sums of one epoch's training losses (kept in checkpoints for mid-epoch resume)."""

    loss_sum: float = 0.0
    count: int = 0
    parts: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Train `model` with `loss_fn` on `train_set`, validating on `val_set` every epoch.

    `loss_fn(est_spec, clean_spec, est_wav, clean_wav) -> (loss, parts)`. Inside a process group
    (torchrun or `common.distributed.launch_processes`) the model is wrapped in DDP and only
    rank 0 writes files. `resume_from` continues a checkpoint exactly where it stopped.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Any,
        train_set: Dataset,
        val_set: Dataset | None,
        cfg: TrainConfig,
        stft_cfg: StftConfig,
        out_dir: str | Path,
        *,
        resume_from: str | Path | None = None,
        data_info: dict | None = None,
        run_config: dict | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_config = plain(run_config or {})  # the whole RunConfig, stored with each file
        self.stft = stft_cfg
        self.out_dir = Path(out_dir)
        self.loss_fn = loss_fn
        self.train_set = train_set
        self.val_set = val_set
        self.data_info = plain(data_info or {})
        self.dist = dist_info()
        if cfg.batch_size % self.dist.world_size:
            raise UserError(
                f"batch_size={cfg.batch_size} is the effective batch over {self.dist.world_size} "
                f"processes and must be divisible by it; use e.g. "
                f"{cfg.batch_size // self.dist.world_size * self.dist.world_size or self.dist.world_size}"
            )
        self.per_rank_batch = cfg.batch_size // self.dist.world_size
        self.device = self._pick_device()
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")

        self.model_name, self.model_config = _model_identity(model)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="min",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            min_lr=cfg.min_lr,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)

        self.steps_per_epoch = self._steps_per_epoch()
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.epoch = 0  # index of the epoch in progress (or next to start)
        self.samples_in_epoch = 0  # effective-batch samples already consumed in `epoch`
        self.step = 0
        self.best_val_loss = math.inf
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.nonfinite_steps = 0
        self.totals = _EpochTotals()
        self.history: list[dict] = []
        self.stop_reason: str | None = None
        self.train_seconds = 0.0  # summed over sessions
        self._reserve_s = 0.0  # time needed after the last step: validation + saving
        self._deadline: float | None = None
        self._session_start = (0.0, 0)  # (monotonic time, step) when this session began

        if resume_from is not None:
            self._resume(Path(resume_from))
        else:
            # After the model's initialisation (the caller seeds that; DDP copies rank 0's
            # weights to all ranks): dropout and any other randomness, different per rank.
            seed_everything(cfg.seed + 7919 * self.dist.rank)

        self.net: nn.Module = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=device_ids)

    # ----------------------------------------------------------------------------- setup
    def _pick_device(self) -> torch.device:
        if self.dist.enabled and torch.cuda.is_available() and self.cfg.device != "cpu":
            return torch.device("cuda", self.dist.local_rank)
        device = select_device(self.cfg.device)
        return (
            torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" else device
        )

    def _steps_per_epoch(self) -> int:
        per_rank_items = len(self.train_set) // self.dist.world_size
        steps = per_rank_items // self.per_rank_batch
        if steps < 1:
            raise UserError(
                f"training set has {len(self.train_set)} items, fewer than one batch of "
                f"{self.cfg.batch_size}; lower --batch-size or add data"
            )
        return steps

    def train_config_dict(self) -> dict:
        """The train config plus how the batch is split, as stored in checkpoints."""
        return {
            **plain(asdict(self.cfg)),
            "world_size": self.dist.world_size,
            "per_process_batch_size": self.per_rank_batch,
            "effective_batch_size": self.per_rank_batch * self.dist.world_size,
            "lr_rule": "lr applies to the effective batch; not scaled with the process count",
            "steps_per_epoch": self.steps_per_epoch,
            "amp_used": self.use_amp,
        }

    # ----------------------------------------------------------------------------- data
    def _loader_generator(self, epoch: int, salt: int = 0) -> torch.Generator:
        # Worker seeds come from this generator instead of the global RNG, so they depend on
        # (seed, epoch) alone and a resumed run sees the same ones.
        g = torch.Generator()
        g.manual_seed(self.cfg.seed * 100_003 + epoch * 2 + salt)
        return g

    def _train_loader(self, epoch: int) -> DataLoader:
        sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=self.cfg.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        skip = self.samples_in_epoch // self.dist.world_size
        indices = list(sampler)[skip:]
        return DataLoader(
            self.train_set,
            batch_size=self.per_rank_batch,
            sampler=indices,
            drop_last=True,
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=self._loader_generator(epoch),
        )

    def _val_loader(self) -> DataLoader | None:
        if self.val_set is None or len(self.val_set) == 0:
            return None
        # Each rank takes every world_size-th item, without the padding DistributedSampler adds,
        # so the summed metrics count every item exactly once.
        shard = Subset(self.val_set, range(self.dist.rank, len(self.val_set), self.dist.world_size))
        return DataLoader(
            shard,
            batch_size=self.cfg.val_batch_size or self.per_rank_batch,
            shuffle=False,
            num_workers=min(self.cfg.num_workers, max(len(shard), 1)),
            pin_memory=self.device.type == "cuda",
            generator=self._loader_generator(0, salt=1),
        )

    def _set_epoch(self, epoch: int) -> None:
        for ds in (self.train_set, self.val_set):
            if ds is not None and hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    # ----------------------------------------------------------------------------- steps
    def _enhance_batch(
        self, noisy: torch.Tensor, net: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        noisy_spec = stft(noisy, self.stft)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            est_spec = net(noisy_spec)
        # The loss and the inverse STFT run in fp32 whatever the model ran in.
        est_spec = est_spec.to(torch.complex64)
        return est_spec, istft(est_spec, self.stft, noisy.shape[-1])

    def _set_lr(self) -> None:
        cfg = self.cfg
        if self.step < self.warmup_steps:
            lr = cfg.lr * (self.step + 1) / self.warmup_steps
        elif cfg.scheduler == "cosine":
            total = self._cosine_total_steps()
            progress = min(1.0, (self.step - self.warmup_steps) / max(1, total - self.warmup_steps))
            lr = cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.step == self.warmup_steps:
            lr = cfg.lr  # warmup just ended: the plateau scheduler takes over from the full lr
        else:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _cosine_total_steps(self) -> int:
        """Steps the cosine spans: the epochs, `max_steps`, or what fits in the time budget."""
        cfg = self.cfg
        total = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        start_time, start_step = self._session_start
        done = self.step - start_step
        if self._deadline is not None and done >= BUDGET_RATE_MIN_STEPS:
            # Re-estimated every step from this session's rate, so the schedule follows a
            # machine that speeds up or slows down and reaches min_lr at the deadline.
            now = time.monotonic()
            rate = done / max(now - start_time, 1e-6)
            remaining = max(0.0, self._deadline - self._reserve_s - now)
            fitted = self.step + rate * remaining + 1
            # Every rank must step with the same lr: use the ranks' mean estimate.
            (fitted_sum,) = all_reduce_sum([fitted], self._collective_device())
            total = min(total, int(fitted_sum / self.dist.world_size))
        return total

    def _train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> None:
        noisy = noisy.to(self.device, non_blocking=True)
        clean = clean.to(self.device, non_blocking=True)
        self._set_lr()
        self.net.train()
        est_spec, est_wav = self._enhance_batch(noisy, self.net)
        loss, parts = self.loss_fn(est_spec, stft(clean, self.stft), est_wav, clean)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if torch.isfinite(grad_norm):
            self.nonfinite_steps = 0
            self.scaler.step(self.optimizer)
        else:
            # Same decision on every rank (gradients are already averaged): skip this step.
            self.nonfinite_steps += 1
            if self.nonfinite_steps >= MAX_NONFINITE_STEPS:
                raise UserError(
                    f"training diverged: non-finite gradients for {self.nonfinite_steps} steps "
                    f"in a row at epoch {self.epoch + 1}; lower --lr or check the data"
                )
        self.scaler.update()
        self.step += 1
        self.samples_in_epoch += self.cfg.batch_size
        value = float(loss.detach())
        if math.isfinite(value):
            self.totals.loss_sum += value
            self.totals.count += 1
            for k, v in parts.items():
                self.totals.parts[k] = self.totals.parts.get(k, 0.0) + float(v)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss, SI-SDR of the output and of the noisy input over the whole val set."""
        loader = self._val_loader()
        if loader is None:
            return {}
        # The bare model, not the DDP wrapper: DDP's forward broadcasts buffers, a collective
        # that would deadlock when the ranks' shards have different numbers of batches.
        self.model.eval()
        sums = [0.0, 0.0, 0.0, 0.0]  # loss * n, si_sdr, noisy si_sdr, n
        for noisy, clean in loader:
            noisy = noisy.to(self.device, non_blocking=True)
            clean = clean.to(self.device, non_blocking=True)
            est_spec, est_wav = self._enhance_batch(noisy, self.model)
            loss, _ = self.loss_fn(est_spec, stft(clean, self.stft), est_wav, clean)
            n = noisy.shape[0]
            sums[0] += float(loss) * n
            sums[1] += float(_train_val_si_sdr(clean, est_wav).sum())
            sums[2] += float(_train_val_si_sdr(clean, noisy).sum())
            sums[3] += n
        del loader
        loss_sum, sdr_sum, noisy_sum, n = all_reduce_sum(sums, self._collective_device())
        return {
            "val_loss": loss_sum / n,
            "val_si_sdr": sdr_sum / n,
            "val_si_sdr_noisy": noisy_sum / n,
            "val_items": int(n),
        }

    def _collective_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo takes CPU tensors.
        return (
            self.device if self.device.type == "cuda" and self.dist.enabled else torch.device("cpu")
        )

    # ----------------------------------------------------------------------------- loop
    def _out_of_budget(self, deadline: float | None) -> bool:
        stop = False
        if self.cfg.max_steps is not None and self.step >= self.cfg.max_steps:
            self.stop_reason = "max_steps"
            return True  # deterministic: no need to ask the other ranks
        if deadline is not None:
            stop = any_rank(
                time.monotonic() + self._reserve_s >= deadline, self._collective_device()
            )
            if stop:
                self.stop_reason = "max_minutes"
        return stop

    def fit(self) -> dict:
        """Train until `epochs`, early stopping, `max_steps` or `max_minutes`; return the history."""
        cfg = self.cfg
        start = time.monotonic()
        deadline = start + 60 * cfg.max_minutes if cfg.max_minutes else None
        self._deadline = deadline
        self._session_start = (start, self.step)
        self.stop_reason = None
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            while self.epoch < cfg.epochs and self.stop_reason is None:
                epoch = self.epoch
                if self._out_of_budget(deadline):
                    if self.samples_in_epoch:
                        self._save_partial(start)
                    break
                self._set_epoch(epoch)
                if not self._train_epoch(epoch, deadline):
                    self._save_partial(start)
                    break
                self._end_epoch(epoch, start)
            if self.stop_reason is None:
                self.stop_reason = "epochs"
        finally:
            self.train_seconds += time.monotonic() - start
        if self.dist.is_main:
            self._write_history()
        barrier()
        return self.summary()

    def _train_epoch(self, epoch: int, deadline: float | None) -> bool:
        """Run the rest of `epoch`; False when a budget stopped it part-way."""
        loader = self._train_loader(epoch)
        done = self.samples_in_epoch // self.cfg.batch_size
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=done,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=not (self.cfg.progress and self.dist.is_main),
            dynamic_ncols=True,
            leave=False,
        )
        finished = True
        try:
            for noisy, clean in loader:
                if self._out_of_budget(deadline):
                    finished = False
                    break
                self._train_step(noisy, clean)
                bar.update(1)
                if self.totals.count:
                    bar.set_postfix(loss=f"{self.totals.loss_sum / self.totals.count:.4f}")
        finally:
            bar.close()
            # Drop the iterator here, in the main thread, so worker processes shut down now
            # instead of at interpreter exit (the source of the team's AssertionError spam).
            del loader
        return finished

    def _train_stats(self) -> dict[str, Any]:
        keys = sorted(self.totals.parts)
        sums = all_reduce_sum(
            [self.totals.loss_sum, float(self.totals.count)] + [self.totals.parts[k] for k in keys],
            self._collective_device(),
        )
        n = max(sums[1], 1.0)
        return {
            "train_loss": sums[0] / n if sums[1] else math.nan,
            "train_parts": {k: v / n for k, v in zip(keys, sums[2:])},
        }

    def _end_epoch(self, epoch: int, start: float) -> None:
        t0 = time.monotonic()
        entry: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, **self._train_stats()}
        entry.update(self.validate())
        entry["lr"] = self.optimizer.param_groups[0]["lr"]
        monitored = entry.get("val_loss", entry["train_loss"])
        if self.cfg.scheduler == "plateau" and self.step >= self.warmup_steps:
            self.plateau.step(monitored)
        improved = monitored < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.bad_epochs = monitored, epoch + 1, 0
        else:
            self.bad_epochs += 1
        entry["elapsed_seconds"] = time.monotonic() - start
        self.history.append(entry)
        self.epoch, self.samples_in_epoch, self.totals = epoch + 1, 0, _EpochTotals()
        if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
            self.stop_reason = "early_stopping"
        if self.epoch >= self.cfg.epochs:
            self.stop_reason = "epochs"
        # last.pt goes last: a kill before it leaves best.pt one save ahead, which resuming
        # detects and completes (`load_resume_state`); never last.pt naming a best.pt not written.
        paths = ["best.pt"] if improved else []
        if self.cfg.checkpoint_every and self.epoch % self.cfg.checkpoint_every == 0:
            paths.append(f"epoch_{self.epoch:03d}.pt")
        self._save(paths + ["last.pt"], start)
        self._reserve_s = 1.5 * (time.monotonic() - t0)

    def _save_partial(self, start: float) -> None:
        """A budget stopped the epoch: validate for the record, save `last.pt`, and `best.pt`
        when none exists yet (so a short run still leaves a model to evaluate)."""
        entry: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.step, "partial": True}
        entry.update(self._train_stats())
        entry.update(self.validate())
        entry["lr"] = self.optimizer.param_groups[0]["lr"]
        entry["elapsed_seconds"] = time.monotonic() - start
        self.history.append(entry)
        paths = [] if (self.out_dir / "best.pt").exists() else ["best.pt"]
        self._save(paths + ["last.pt"], start)  # last.pt last, as in `_end_epoch`

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Everything needed to rebuild the model and continue training, in plain types."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "model_name": self.model_name,
            "model_config": self.model_config,
            "stft": plain(self.stft.to_dict()),
            "train_config": self.train_config_dict(),
            "loss_config": plain(asdict(self.loss_fn.cfg))
            if is_dataclass(getattr(self.loss_fn, "cfg", None))
            else None,
            "data": self.data_info,
            "run_config": self.run_config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": plain(self.plateau.state_dict()),
            "scaler": plain(self.scaler.state_dict()),
            "epoch": self.epoch,
            "samples_in_epoch": self.samples_in_epoch,
            "epoch_totals": plain(asdict(self.totals)),
            "step": self.step,
            "best_val_loss": float(self.best_val_loss),
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "train_seconds": self.train_seconds,
            "history": plain(self.history),
            "rng": capture_rng_state(),
            "torch_version": str(torch.__version__),
        }

    def _save(self, names: list[str], start: float) -> None:
        if not self.dist.is_main:
            return
        seconds, self.train_seconds = (
            self.train_seconds,
            self.train_seconds + (time.monotonic() - start),
        )
        state = self.state_dict()
        self.train_seconds = seconds  # `fit` adds the session time once at the end
        for name in names:
            save_checkpoint(self.out_dir / name, state)
        self._write_history()

    def _resume(self, path: Path) -> None:
        state = load_resume_state(path, repair=self.dist.is_main)
        if state["model_name"] != self.model_name or state["model_config"] != self.model_config:
            raise UserError(
                f"{path}: checkpoint is for model {state['model_name']!r} with config "
                f"{state['model_config']}, not {self.model_name!r} with {self.model_config}; "
                "resume with the same --model and settings"
            )
        if state["stft"] != plain(self.stft.to_dict()):
            raise UserError(
                f"{path}: checkpoint uses STFT {state['stft']}, not {self.stft.to_dict()}; "
                "resume with the same --n-fft and --stft-hop"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["scheduler"])
        if self.use_amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
        self.totals = _EpochTotals(**state["epoch_totals"])
        self.step = int(state["step"])
        self.best_val_loss = float(state["best_val_loss"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.history = list(state["history"])
        restore_rng_state(state["rng"])
        if self.dist.rank > 0:
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + self.step)

    def summary(self) -> dict:
        """History plus how the run ended (also written to `history.json`)."""
        return json_safe(
            {
                "model": self.model_name,
                "epochs_done": self.epoch,
                "step": self.step,
                "stop_reason": self.stop_reason,
                "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss,
                "train_seconds": self.train_seconds,
                "device": str(self.device),
                "train_config": self.train_config_dict(),
                "run_config": self.run_config,
                "history": self.history,
            }
        )

    def _write_history(self) -> None:
        path = self.out_dir / "history.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.summary(), indent=2, allow_nan=False))
        tmp.replace(path)
