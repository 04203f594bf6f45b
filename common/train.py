"""The training loop: one explicit, readable solver for every model (single process or DDP).

Shape of a run (`Trainer.fit`):
    for each epoch:  set the epoch on the sampler and datasets (reproducible order and crops)
        for each batch:  warmup/cosine lr -> forward (fp16 autocast on CUDA) -> loss -> backward
                         -> unscale, clip to `grad_clip` -> optimizer step; stop between steps on
                         `max_steps` or the `max_minutes` budget (saving `last.pt` first)
        validate (loss and SI-SDR, summed over ranks) -> plateau scheduler -> best.pt / last.pt /
        epoch_NNN.pt -> history.json -> early stopping

Its parts: `TrainState` (where the run stands: epoch, step, best loss, history; saved with
`asdict` into every checkpoint and restored by `TrainState.from_checkpoint`), `learning_rate`
(the schedule, a pure function of the step), `common.budget.TrainBudget` (the session's clock
and deadline) and `OPTIMIZERS` (`TrainConfig.optimizer`: "adam" or "adamw").

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
import warnings
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from common.audio import istft, stft
from common.budget import TrainBudget
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
from common.config import OPTIMIZERS, StftConfig, TrainConfig
from common.distributed import all_reduce_sum, any_rank, barrier, dist_info
from common.ema import WeightEMA
from common.env import select_device
from common.errors import UserError
from common.progress import progress as progress_bar

# Consecutive steps with non-finite gradients before training is declared diverged. The count
# is identical on every rank because it is read after DDP has averaged the gradients.
MAX_NONFINITE_STEPS = 50


# What `--resume` may not change: the checkpoint's weights, optimizer state and position in the
# epoch only mean something for the same model, STFT, loss, optimizer, batch, sample order and
# data. Everything else (epochs, budgets, lr schedule, patience, workers, device, where the data
# lives, evaluation) may change between sessions; the changes are reported.
RESUME_FIXED = (
    "model.",
    "stft.",
    "loss.",
    "train.optimizer",
    "train.ema_decay",
    "train.batch_size",
    "train.seed",
    "data.source",
    "data.segment_seconds",
    "data.val_fraction",
    "data.max_train_pairs",
    "data.mix_items",
    "data.snr_db",
    "data.exclude_noncommercial",
    "data.babble_prob",
)
RESUME_IGNORED = ("recipe", "description")


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not name.startswith("model.settings"):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def changed_settings(stored: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """Fields (dotted names) whose value differs between two stored RunConfigs; a field one of
    them lacks (written before it existed) is not a change."""
    old, new = _flat(stored), _flat(current)
    return {
        k: (old[k], new[k])
        for k in sorted(set(old) & set(new))
        if old[k] != new[k] and k not in RESUME_IGNORED
    }


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batch_si_sdr(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
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


def learning_rate(
    step: int, cfg: TrainConfig, warmup_steps: int, total_steps: int, plateau_lr: float
) -> float:
    """The lr of optimizer step `step` (0-based): a linear warmup from lr/warmup_steps to lr,
    then either a cosine from lr to min_lr at `total_steps`, or the plateau scheduler's lr: the
    full lr when warmup ends, then `plateau_lr`, what the scheduler lowered it to at epoch ends."""
    if step < warmup_steps:
        return cfg.lr * (step + 1) / warmup_steps
    if cfg.scheduler == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    return plateau_lr if step > warmup_steps else cfg.lr


@dataclass
class EpochTotals:
    """Running sums of one epoch's training losses (kept in checkpoints for mid-epoch resume)."""

    loss_sum: float = 0.0
    count: int = 0
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainState:
    """Where a run stands: what a checkpoint stores besides the weights, the optimizer, scheduler
    and scaler states and the RNG. Saved with `asdict` as top-level checkpoint keys."""

    epoch: int = 0  # index of the epoch in progress (or next to start)
    samples_in_epoch: int = 0  # effective-batch samples already consumed in `epoch`
    epoch_totals: EpochTotals = field(default_factory=EpochTotals)
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    train_seconds: float = 0.0  # summed over sessions
    history: list[dict] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, state: dict) -> TrainState:
        """The state saved in a checkpoint dict (a key it lacks keeps its default)."""
        values = {f.name: state[f.name] for f in fields(cls) if f.name in state}
        values["epoch_totals"] = EpochTotals(**values.get("epoch_totals", {}))
        values["history"] = list(values.get("history", []))
        return cls(**values)


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
        self.optimizer = getattr(torch.optim, OPTIMIZERS[cfg.optimizer])(
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
        # The averaged weights are what validation sees and what "model" in a checkpoint holds;
        # the raw weights go to "train_model", for resuming.
        self.ema = WeightEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None

        self.steps_per_epoch = self._steps_per_epoch()
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.state = TrainState()
        self.budget = TrainBudget(clock=cfg.budget_clock)
        self.nonfinite_steps = 0
        self.stop_reason: str | None = None

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
        skip = self.state.samples_in_epoch // self.dist.world_size
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

    def _lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _set_lr(self) -> None:
        step, cosine = self.state.step, self.cfg.scheduler == "cosine"
        total = self._cosine_total_steps() if cosine and step >= self.warmup_steps else 0
        lr = learning_rate(step, self.cfg, self.warmup_steps, total, plateau_lr=self._lr())
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _cosine_total_steps(self) -> int:
        """Steps the cosine spans: the epochs, `max_steps`, or what fits in the time budget."""
        total = self.cfg.epochs * self.steps_per_epoch
        if self.cfg.max_steps:
            total = min(total, self.cfg.max_steps)
        fitted = self.budget.steps_by_deadline(self.state.step)
        if fitted is not None:
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
            if self.ema is not None:
                self.ema.update(self.model)
        else:
            # Same decision on every rank (gradients are already averaged): skip this step.
            self.nonfinite_steps += 1
            if self.nonfinite_steps >= MAX_NONFINITE_STEPS:
                raise UserError(
                    f"training diverged: non-finite gradients for {self.nonfinite_steps} steps "
                    f"in a row at epoch {self.state.epoch + 1}; lower --lr or check the data"
                )
        self.scaler.update()
        self.state.step += 1
        self.state.samples_in_epoch += self.cfg.batch_size
        value, totals = float(loss.detach()), self.state.epoch_totals
        if math.isfinite(value):
            totals.loss_sum += value
            totals.count += 1
            for k, v in parts.items():
                totals.parts[k] = totals.parts.get(k, 0.0) + float(v)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss, SI-SDR of the output and of the noisy input over the whole val set."""
        loader = self._val_loader()
        if loader is None:
            return {}
        # The bare model, not the DDP wrapper: DDP's forward broadcasts buffers, a collective
        # that would deadlock when the ranks' shards have different numbers of batches.
        model = self.eval_model
        model.eval()
        sums = [0.0, 0.0, 0.0, 0.0]  # loss * n, si_sdr, noisy si_sdr, n
        for noisy, clean in loader:
            noisy = noisy.to(self.device, non_blocking=True)
            clean = clean.to(self.device, non_blocking=True)
            est_spec, est_wav = self._enhance_batch(noisy, model)
            loss, _ = self.loss_fn(est_spec, stft(clean, self.stft), est_wav, clean)
            n = noisy.shape[0]
            sums[0] += float(loss) * n
            sums[1] += float(batch_si_sdr(clean, est_wav).sum())
            sums[2] += float(batch_si_sdr(clean, noisy).sum())
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

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and shipped: the EMA when on, else the model."""
        return self.ema.model if self.ema is not None else self.model

    # ----------------------------------------------------------------------------- loop
    def fit(self) -> dict:
        """Train until `epochs`, early stopping, `max_steps` or `max_minutes`; return the history."""
        self.budget.start(self.cfg.max_minutes, self.state.step)
        self.stop_reason = None
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            while self.state.epoch < self.cfg.epochs and self.stop_reason is None:
                if self._out_of_budget():  # before the epoch: record it only if it had begun
                    if self.state.samples_in_epoch:
                        self._save_partial()
                    break
                if not self._train_epoch():  # a budget stopped it part-way
                    self._save_partial()
                    break
                self._end_epoch()
            if self.stop_reason is None:
                self.stop_reason = "epochs"
        finally:
            self.state.train_seconds += self.budget.elapsed_s()
        if self.dist.is_main:
            self._write_history()
        barrier()
        return self.summary()

    def _out_of_budget(self) -> bool:
        """True (and `stop_reason` set) when `max_steps` is reached or time is up on any rank."""
        if self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps:
            self.stop_reason = "max_steps"
            return True  # deterministic: no need to ask the other ranks
        if self.budget.deadline is None:
            return False
        if any_rank(self.budget.out_of_time(), self._collective_device()):
            self.stop_reason = "max_minutes"
            return True
        return False

    def _train_epoch(self) -> bool:
        """Run the rest of the current epoch; False when a budget stopped it part-way."""
        epoch, totals = self.state.epoch, self.state.epoch_totals
        self._set_epoch(epoch)
        loader = self._train_loader(epoch)
        bar = progress_bar(
            total=self.steps_per_epoch,
            initial=self.state.samples_in_epoch // self.cfg.batch_size,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=not (self.cfg.progress and self.dist.is_main),
            dynamic_ncols=True,
            leave=False,
        )
        finished = True
        try:
            for noisy, clean in loader:
                if self._out_of_budget():
                    finished = False
                    break
                self._train_step(noisy, clean)
                bar.update(1)
                if totals.count:
                    bar.set_postfix(loss=f"{totals.loss_sum / totals.count:.4f}")
        finally:
            bar.close()
            # Drop the iterator here, in the main thread, so worker processes shut down now
            # instead of at interpreter exit (the source of the team's AssertionError spam).
            del loader
        return finished

    def _train_stats(self) -> dict[str, Any]:
        totals = self.state.epoch_totals
        keys = sorted(totals.parts)
        sums = all_reduce_sum(
            [totals.loss_sum, float(totals.count)] + [totals.parts[k] for k in keys],
            self._collective_device(),
        )
        n = max(sums[1], 1.0)
        return {
            "train_loss": sums[0] / n if sums[1] else math.nan,
            "train_parts": {k: v / n for k, v in zip(keys, sums[2:])},
        }

    def _history_entry(self, **flags: Any) -> dict[str, Any]:
        """The current epoch's record: train and validation results and the lr it ended with."""
        entry = {"epoch": self.state.epoch + 1, "step": self.state.step, **flags}
        return {**entry, **self._train_stats(), **self.validate(), "lr": self._lr()}

    def _end_epoch(self) -> None:
        t0, state = self.budget.now(), self.state
        entry = self._history_entry()
        monitored = entry.get("val_loss", entry["train_loss"])
        if self.cfg.scheduler == "plateau" and state.step >= self.warmup_steps:
            self.plateau.step(monitored)
        improved = monitored < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_epoch, state.bad_epochs = monitored, state.epoch + 1, 0
        else:
            state.bad_epochs += 1
        entry["elapsed_seconds"] = self.budget.elapsed_s()
        state.history.append(entry)
        state.epoch, state.samples_in_epoch, state.epoch_totals = state.epoch + 1, 0, EpochTotals()
        if self.cfg.patience and state.bad_epochs >= self.cfg.patience:
            self.stop_reason = "early_stopping"
        if state.epoch >= self.cfg.epochs:
            self.stop_reason = "epochs"
        # last.pt goes last: a kill before it leaves best.pt one save ahead, which resuming
        # detects and completes (`load_resume_state`); never last.pt naming a best.pt not written.
        paths = ["best.pt"] if improved else []
        if self.cfg.checkpoint_every and state.epoch % self.cfg.checkpoint_every == 0:
            paths.append(f"epoch_{state.epoch:03d}.pt")
        self._save(paths + ["last.pt"])
        self.budget.reserve_s = 1.5 * (self.budget.now() - t0)

    def _save_partial(self) -> None:
        """A budget stopped the epoch: validate for the record, save `last.pt`, and `best.pt`
        when none exists yet (so a short run still leaves a model to evaluate)."""
        entry = self._history_entry(partial=True)
        entry["elapsed_seconds"] = self.budget.elapsed_s()
        self.state.history.append(entry)
        paths = [] if (self.out_dir / "best.pt").exists() else ["best.pt"]
        self._save(paths + ["last.pt"])  # last.pt last, as in `_end_epoch`

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
            "model": self.eval_model.state_dict(),
            **(
                {"train_model": self.model.state_dict(), "ema_updates": self.ema.updates}
                if self.ema is not None
                else {}
            ),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": plain(self.plateau.state_dict()),
            "scaler": plain(self.scaler.state_dict()),
            **plain(asdict(self.state)),
            "rng": capture_rng_state(),
            "torch_version": str(torch.__version__),
        }

    def _save(self, names: list[str]) -> None:
        if not self.dist.is_main:
            return
        checkpoint = self.state_dict()
        # The files count this session's time so far; `fit` adds it to the state once, at the end.
        checkpoint["train_seconds"] += self.budget.elapsed_s()
        for name in names:
            save_checkpoint(self.out_dir / name, checkpoint)
        self._write_history()

    def _resume(self, path: Path) -> None:
        checkpoint = load_resume_state(path, repair=self.dist.is_main)
        self._check_same_setup(path, checkpoint)
        if self.ema is not None:
            self.model.load_state_dict(checkpoint["train_model"])
            self.ema.load_state_dict(checkpoint["model"], checkpoint["ema_updates"])
        else:
            self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.plateau.load_state_dict(checkpoint["scheduler"])
        if self.use_amp and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = TrainState.from_checkpoint(checkpoint)
        restore_rng_state(checkpoint["rng"])
        if self.dist.rank > 0:
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + self.state.step)

    def _check_same_setup(self, path: Path, checkpoint: dict) -> None:
        # The whole stored configuration first: it names every changed setting at once.
        stored = checkpoint.get("run_config") or {}
        if stored and self.run_config:
            self._check_changed_settings(path, stored)
        name, model_cfg = checkpoint["model_name"], checkpoint["model_config"]
        if name != self.model_name or model_cfg != self.model_config:
            raise UserError(
                f"{path}: checkpoint is for model {name!r} with config {model_cfg}, not "
                f"{self.model_name!r} with {self.model_config}; resume with the same --model "
                "and settings"
            )
        if checkpoint["stft"] != plain(self.stft.to_dict()):
            raise UserError(
                f"{path}: checkpoint uses STFT {checkpoint['stft']}, not {self.stft.to_dict()}; "
                "resume with the same --n-fft and --stft-hop"
            )
        # Checkpoints from before the setting existed were trained with Adam.
        optimizer = checkpoint.get("train_config", {}).get("optimizer", "adam")
        if optimizer != self.cfg.optimizer:
            raise UserError(
                f"{path}: checkpoint was trained with optimizer {optimizer!r}, not "
                f"{self.cfg.optimizer!r}; resume with --set train.optimizer={optimizer}"
            )
        ema_decay = checkpoint.get("train_config", {}).get("ema_decay", 0.0)
        if ema_decay != self.cfg.ema_decay:
            raise UserError(
                f"{path}: checkpoint was trained with train.ema_decay={ema_decay}, not "
                f"{self.cfg.ema_decay}; resume with --set train.ema_decay={ema_decay}"
            )

    def _check_changed_settings(self, path: Path, stored: dict) -> None:
        """Every setting that differs from the checkpoint's run, named: refused where the
        checkpoint's state cannot carry over (RESUME_FIXED), reported where it can."""
        changed = changed_settings(stored, self.run_config)
        fixed = {k: v for k, v in changed.items() if k.startswith(RESUME_FIXED)}
        if fixed:
            listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in fixed.items())
            raise UserError(
                f"{path}: --resume cannot change {listed} (the checkpoint's state belongs to its "
                "settings); resume with the checkpoint's values, or start a new run in another "
                "--out"
            )
        if changed and self.dist.is_main:
            listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            warnings.warn(f"{path}: resuming with changed settings: {listed}", stacklevel=2)

    def summary(self) -> dict:
        """History plus how the run ended (also written to `history.json`)."""
        return json_safe(
            {
                "model": self.model_name,
                "epochs_done": self.state.epoch,
                "step": self.state.step,
                "stop_reason": self.stop_reason,
                "best_epoch": self.state.best_epoch,
                "best_val_loss": self.state.best_val_loss,
                "train_seconds": self.state.train_seconds,
                "device": str(self.device),
                "train_config": self.train_config_dict(),
                "run_config": self.run_config,
                "history": self.state.history,
            }
        )

    def _write_history(self) -> None:
        path = self.out_dir / "history.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.summary(), indent=2, allow_nan=False))
        tmp.replace(path)
