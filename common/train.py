"""The training loop: one explicit, readable solver for every model (single process or DDP).

Shape of a run (`Trainer.fit`):
    for each epoch:  set the epoch on the datasets (reproducible order and crops)
        for each batch:  the schedule's lr -> forward (fp16 autocast on CUDA) -> loss -> backward
                         -> unscale, clip to `grad_clip` -> optimizer step; stop between steps on
                         `max_steps` or the `max_minutes` budget (saving `last.pt` first)
        validate (loss and SI-SDR, summed over ranks) -> plateau scheduler -> best.pt / last.pt /
        epoch_NNN.pt -> history.json -> early stopping

The trainer keeps the loop; its parts live beside it: `common.loaders` (the data split over
processes, each epoch's order and the position in it: exact mid-epoch resume), `common.schedule`
(warmup, then cosine or plateau), `common.budget` (the session's clock and deadline),
`common.train_state` (what a checkpoint holds and what a resumed one must match) and
`common.run_store` (every file of the run, written atomically; only rank 0 writes).

`TrainConfig.batch_size` is the *effective* batch, summed over all processes, and `lr` applies
to it unchanged: a run on 2 GPUs follows the same optimisation path as on 1 GPU, only faster.
When a budget stops an epoch part-way, the run is validated for the record (a history entry with
"partial": true) without touching the scheduler, best-loss tracking or early stopping, so the
resumed run continues as if never interrupted. `history.json` is `Trainer.summary()`: per-epoch
train/val loss, val SI-SDR of output and input, lr, and the stop reason ("epochs",
"early_stopping", "max_steps" or "max_minutes"). Validation runs the bare model, not the DDP
wrapper: DDP's forward broadcasts buffers, a collective that deadlocks on uneven shards.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from common.audio import istft, stft
from common.budget import TrainBudget
from common.config import OPTIMIZERS, StftConfig, TrainConfig
from common.distributed import all_reduce_sum, any_rank, barrier, dist_info
from common.ema import WeightEMA
from common.errors import UserError
from common.loaders import RunLoaders
from common.losses import si_sdr_db
from common.progress import progress as progress_bar
from common.run_store import RunStore
from common.schedule import LrSchedule
from common.train_state import (
    EpochTotals,
    RunIdentity,
    TrainState,
    check_resume,
    checkpoint_state,
    optimisation_state,
    restore_optimisation,
    run_summary,
    train_config_dict,
)

# Consecutive steps with non-finite gradients before training is declared diverged. The count
# is identical on every rank because it is read after DDP has averaged the gradients.
MAX_NONFINITE_STEPS = 50


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def enhance_batch(
    net: nn.Module, noisy: torch.Tensor, stft_cfg: StftConfig, amp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(estimated spectrum, estimated waveform) of a batch: the model under fp16 autocast when
    `amp` (CUDA), the loss's inputs and the inverse STFT in fp32 whatever the model ran in."""
    noisy_spec = stft(noisy, stft_cfg)
    with torch.autocast(noisy.device.type, dtype=torch.float16, enabled=amp):
        est_spec = net(noisy_spec)
    est_spec = est_spec.to(torch.complex64)
    return est_spec, istft(est_spec, stft_cfg, noisy.shape[-1])


def epoch_bar(cfg: TrainConfig, steps: int, state: TrainState, is_main: bool) -> Any:
    """The epoch's progress bar (rank 0, `train.progress`), from where the epoch resumes."""
    return progress_bar(
        total=steps,
        initial=state.samples_in_epoch // cfg.batch_size,
        desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and is_main),
        dynamic_ncols=True,
        leave=False,
    )


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
        self.cfg, self.stft, self.loss_fn = cfg, stft_cfg, loss_fn
        self.dist = dist_info()
        self.store = RunStore(out_dir, writer=self.dist.is_main)
        self.device = self.dist.device(cfg.device)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        self.loaders = RunLoaders(train_set, val_set, cfg, self.dist, self.device)
        self.who = RunIdentity.of(model, stft_cfg, loss_fn, data_info or {}, run_config or {})
        self.model = model.to(self.device)
        self.optimizer = getattr(torch.optim, OPTIMIZERS[cfg.optimizer])(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.budget = TrainBudget(clock=cfg.budget_clock)
        steps, n = self.loaders.steps_per_epoch, self.dist.world_size
        self.schedule = LrSchedule(self.optimizer, cfg, steps, self.budget, self._sum_over_ranks, n)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        # The averaged weights are validated and shipped (`eval_model`); see `optimisation_state`.
        self.ema = WeightEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.state = TrainState()
        self.nonfinite_steps = 0
        self.stop_reason: str | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None  # of this session's best.pt
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

    def _sum_over_ranks(self, values: list[float]) -> list[float]:
        return all_reduce_sum(values, self.dist.collective_device(self.device))

    def train_config_dict(self) -> dict:
        """The train config plus how the batch is split, as stored in checkpoints."""
        n, steps = self.loaders.per_rank_batch, self.loaders.steps_per_epoch
        return train_config_dict(self.cfg, self.dist.world_size, n, steps, self.use_amp)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and shipped: the EMA when on, else the model."""
        return self.ema.model if self.ema is not None else self.model

    def _train_step(self, noisy: torch.Tensor, clean: torch.Tensor) -> None:
        noisy = noisy.to(self.device, non_blocking=True)
        clean = clean.to(self.device, non_blocking=True)
        self.schedule.apply(self.state.step)
        self.net.train()
        est_spec, est_wav = enhance_batch(self.net, noisy, self.stft, self.use_amp)
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
                    f"in a row at epoch {self.state.epoch + 1}; lower train.lr or check the data"
                )
        self.scaler.update()
        self.state.step += 1
        self.state.samples_in_epoch += self.cfg.batch_size
        self.state.epoch_totals.add(float(loss.detach()), parts)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss, SI-SDR of the output and of the noisy input over the whole val set."""
        loader = self.loaders.val()
        if loader is None:
            return {}
        model = self.eval_model  # the bare model (see the module docstring)
        model.eval()
        sums = [0.0, 0.0, 0.0, 0.0]  # loss * n, si_sdr, noisy si_sdr, n
        for noisy, clean in loader:
            noisy = noisy.to(self.device, non_blocking=True)
            clean = clean.to(self.device, non_blocking=True)
            est_spec, est_wav = enhance_batch(model, noisy, self.stft, self.use_amp)
            loss, _ = self.loss_fn(est_spec, stft(clean, self.stft), est_wav, clean)
            n = noisy.shape[0]
            sums[0] += float(loss) * n
            sums[1] += float(si_sdr_db(est_wav, clean).sum())
            sums[2] += float(si_sdr_db(noisy, clean).sum())
            sums[3] += n
        del loader
        loss_sum, sdr_sum, noisy_sum, n = self._sum_over_ranks(sums)
        return {
            "val_loss": loss_sum / n,
            "val_si_sdr": sdr_sum / n,
            "val_si_sdr_noisy": noisy_sum / n,
            "val_items": int(n),
        }

    def fit(self) -> dict:
        """Train until `epochs`, early stopping, `max_steps` or `max_minutes`; return the summary."""
        self.budget.start(self.cfg.max_minutes, self.state.step)
        self.stop_reason = None
        self.store.create()
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
        summary = self.summary()
        self.store.write_json("history.json", summary)
        barrier()
        return summary

    def _out_of_budget(self) -> bool:
        """True (and `stop_reason` set) when `max_steps` is reached or time is up on any rank."""
        if self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps:
            self.stop_reason = "max_steps"
            return True  # deterministic: no need to ask the other ranks
        if self.budget.deadline is None:
            return False
        if any_rank(self.budget.out_of_time(), self.dist.collective_device(self.device)):
            self.stop_reason = "max_minutes"
            return True
        return False

    def _train_epoch(self) -> bool:
        """Run the rest of the current epoch; False when a budget stopped it part-way."""
        epoch, totals = self.state.epoch, self.state.epoch_totals
        self.loaders.set_epoch(epoch)
        loader = self.loaders.train(epoch, self.state.samples_in_epoch)
        bar = epoch_bar(self.cfg, self.loaders.steps_per_epoch, self.state, self.dist.is_main)
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

    def _history_entry(self, **flags: Any) -> dict[str, Any]:
        """The current epoch's record: train and validation results and the lr it ended with."""
        entry = {"epoch": self.state.epoch + 1, "step": self.state.step, **flags}
        train = self.state.epoch_totals.means(self._sum_over_ranks)
        return {**entry, **train, **self.validate(), "lr": self.schedule.lr}

    def _record(self, entry: dict[str, Any]) -> None:
        entry["elapsed_seconds"] = self.budget.elapsed_s()
        self.state.history.append(entry)

    def _end_epoch(self) -> None:
        t0, state = self.budget.now(), self.state
        entry = self._history_entry()
        monitored = entry.get("val_loss", entry["train_loss"])
        self.schedule.end_epoch(monitored, state.step)
        improved = monitored < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_epoch, state.bad_epochs = monitored, state.epoch + 1, 0
        else:
            state.bad_epochs += 1
        self._record(entry)
        state.epoch, state.samples_in_epoch, state.epoch_totals = state.epoch + 1, 0, EpochTotals()
        if self.cfg.patience and state.bad_epochs >= self.cfg.patience:
            self.stop_reason = "early_stopping"
        if state.epoch >= self.cfg.epochs:
            self.stop_reason = "epochs"
        # last.pt goes last: a kill before it leaves best.pt one save ahead, which resuming
        # detects and completes (`RunStore.load_resume`); never last.pt naming an unwritten best.
        paths = ["best.pt"] if improved else []
        if self.cfg.checkpoint_every and state.epoch % self.cfg.checkpoint_every == 0:
            paths.append(f"epoch_{state.epoch:03d}.pt")
        self._save(paths + ["last.pt"])
        self.budget.reserve_s = 1.5 * (self.budget.now() - t0)

    def _save_partial(self) -> None:
        """A budget stopped the epoch: validate for the record, save `last.pt`, and `best.pt`
        when none exists yet (so a short run still leaves a model to evaluate)."""
        self._record(self._history_entry(partial=True))
        paths = [] if self.store.exists("best.pt") else ["best.pt"]
        self._save(paths + ["last.pt"])  # last.pt last, as in `_end_epoch`

    def _save(self, names: list[str]) -> None:
        if not self.store.writer:
            return
        parts = optimisation_state(self.model, self.ema, self.optimizer, self.schedule, self.scaler)
        checkpoint = checkpoint_state(self.who, self.train_config_dict(), *parts, self.state)
        # The files count this session's time so far; `fit` adds it to the state once, at the end.
        checkpoint["train_seconds"] += self.budget.elapsed_s()
        self.store.save_checkpoints(names, checkpoint)
        if "best.pt" in names:  # kept for `common.run.TrainResult`: no re-reading best.pt
            self.best_weights = {k: v.detach().clone() for k, v in checkpoint["model"].items()}
        self.store.write_json("history.json", self.summary())

    def _resume(self, path: Path) -> None:
        checkpoint = self.store.load_resume(path)
        cfg, parts = self.cfg, (self.model, self.ema, self.optimizer, self.schedule, self.scaler)
        check_resume(path, checkpoint, self.who, cfg.optimizer, cfg.ema_decay, self.dist.is_main)
        self.state = restore_optimisation(checkpoint, *parts, self.use_amp)
        if self.dist.rank > 0:
            torch.manual_seed(cfg.seed + 7919 * self.dist.rank + self.state.step)

    def summary(self) -> dict:
        """History plus how the run ended (also written to `history.json`)."""
        config = self.train_config_dict()
        return run_summary(self.who, self.state, self.stop_reason, self.device, config)
