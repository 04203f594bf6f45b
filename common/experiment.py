"""The steps every notebook runs, so that notebook sources stay thin and read top to bottom:
data (with the alignment guard), training (one process or data-parallel), evaluation on the test
pairs from real waveforms, example figures, and the run's `summary.json`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.audio import SAMPLE_RATE, StftConfig
from common.budget import SessionBudget
from common.checkpoint import json_safe, load_checkpoint
from common.data import (
    AudioPair,
    PairedDataset,
    check_alignment,
    discover_pairs,
    find_pair_dirs,
    prepare_kaggle_data,
    split_pairs,
)
from common.distributed import launch_processes
from common.enhance import load_enhancer, load_model
from common.env import EnvInfo, describe_environment, format_environment, select_device
from common.errors import UserError
from common.losses import EnhancementLoss, LossConfig
from common.metrics import EvalItem, EvalResult, evaluate_pairs, summary_table, write_results
from common.models import build_model, count_parameters
from common.plots import plot_metric_distributions, plot_metric_table, plot_spectrograms
from common.synthetic import make_synthetic_corpus
from common.train import TrainConfig, Trainer

KAGGLE_DATASET_SLUG = "libri-speech-noise-dataset"


@dataclass
class RunParams:
    """A notebook's parameters cell, gathered (papermill overrides them one by one)."""

    model: str
    data_source: str = "kaggle"  # "kaggle", "synthetic", or a folder (archives or extracted)
    work_dir: str = "auto"  # where archives are extracted
    output_dir: str = "auto"  # /kaggle/working on Kaggle, ./outputs/<model> elsewhere
    epochs: int = 30
    batch_size: int = 16
    segment_seconds: float = 3.0
    # The whole notebook's budget, counted from its first cell (installs, extraction, training,
    # evaluation, figures): Kaggle stops a session at 720 minutes whatever it is doing.
    max_minutes: float = 690.0
    eval_reserve_minutes: float | None = None  # kept for evaluation; None: 2% of max_minutes
    resume_checkpoint: str = ""
    seed: int = 0
    num_workers: int = 2
    max_train_pairs: int = 0  # 0: all
    max_test_pairs: int = 0  # 0: all
    eval_seconds: float = 0.0  # 0: whole test files
    device: str = "auto"  # "auto", "cpu" or "cuda"
    nproc: str | int = "auto"  # data-parallel processes: "auto" = one per GPU
    lr: float = 1e-3
    loss: str = "seed"  # "seed" (L1 on log1p magnitude) or "compressed" (GTCRN-style)
    scheduler: str = "plateau"
    warmup_epochs: float = 1.0
    patience: int = 10
    model_config: dict = field(default_factory=dict)

    @classmethod
    def from_namespace(cls, model: str, namespace: dict) -> RunParams:
        """Collect the parameters a notebook defined (its parameters cell) by field name."""
        names = {f for f in cls.__dataclass_fields__ if f != "model"}
        return cls(model=model, **{k: namespace[k] for k in names if k in namespace})

    @property
    def eval_reserve(self) -> float:
        if self.eval_reserve_minutes is not None:
            return float(self.eval_reserve_minutes)
        return 0.02 * self.max_minutes  # 14 min of a 690-min session

    @property
    def on_kaggle(self) -> bool:
        return Path("/kaggle/working").is_dir()

    def resolved_output_dir(self) -> Path:
        if self.output_dir != "auto":
            return Path(self.output_dir)
        return Path("/kaggle/working") if self.on_kaggle else Path("outputs") / self.model

    def resolved_work_dir(self) -> Path:
        if self.work_dir != "auto":
            return Path(self.work_dir)
        # The input mount is read-only and /kaggle/working is kept as output: extract elsewhere.
        return Path("/tmp/se-data") if self.on_kaggle else Path("work")


# ------------------------------------------------------------------------------ environment


@dataclass
class RunEnvironment:
    device: torch.device
    nproc: int
    description: dict
    budget: SessionBudget


def _refuse_cpu_training_on_kaggle(params: RunParams, env: EnvInfo, device: torch.device) -> None:
    """On Kaggle with the real data, a CPU fallback would spend the session training ~60x slower."""
    if device.type != "cpu" or params.device == "cpu" or params.data_source != "kaggle":
        return
    if not env.on_kaggle:
        return
    if env.gpus:
        g = env.gpus[0]
        why = f"GPU {g.name} (sm_{g.capability[0]}{g.capability[1]}) cannot run this torch build"
    else:
        why = "no GPU is attached"
    raise UserError(
        f"{why}, and training on the CPU would take the whole session: choose the accelerator "
        "'GPU T4 x2' (machine_shape NvidiaTeslaT4), or set device = 'cpu' in the parameters "
        "cell to train on the CPU anyway"
    )


def setup_environment(params: RunParams, training: bool = True) -> RunEnvironment:
    """Choose the device and the number of data-parallel processes, and say why.

    A notebook that trains on Kaggle's data stops here, in one line, when it would fall back to
    the CPU (unless `device = "cpu"` asks for it); evaluation alone may run on the CPU.
    """
    budget = SessionBudget.for_notebook(params.max_minutes)
    env = describe_environment()
    device = select_device(params.device, env)
    if training:
        _refuse_cpu_training_on_kaggle(params, env, device)
    usable = [g for g in env.gpus if g.supported]
    if params.nproc == "auto":
        nproc = len(usable) if device.type == "cuda" and len(usable) > 1 else 1
    else:
        nproc = max(1, int(params.nproc))
    print(format_environment(env, device))
    mode = f"data-parallel on {nproc} processes (DDP)" if nproc > 1 else "single process"
    print(f"training mode: {mode}")
    print(
        f"time budget: {params.max_minutes:g} min from the notebook's first cell "
        f"({budget.elapsed_s() / 60:.1f} min gone), {params.eval_reserve:g} min kept for evaluation"
    )
    return RunEnvironment(
        device=device,
        nproc=nproc,
        description={**env.to_dict(), "device": str(device), "nproc": nproc},
        budget=budget,
    )


# ------------------------------------------------------------------------------------- data


@dataclass
class ExperimentData:
    train: list[AudioPair]
    val: list[AudioPair]
    test: list[AudioPair]
    info: dict


def _find_kaggle_input() -> Path:
    base = Path("/kaggle/input")
    candidates = sorted(p.parent for p in base.rglob("test.7z")) if base.is_dir() else []
    candidates += sorted(p for p in base.glob(f"*{KAGGLE_DATASET_SLUG}*")) if base.is_dir() else []
    if not candidates:
        raise UserError(
            "data_source='kaggle' but no test.7z under /kaggle/input; attach the dataset "
            "earth16/libri-speech-noise-dataset to the notebook"
        )
    return candidates[0]


def _limit(pairs: list[AudioPair], n: int) -> list[AudioPair]:
    return pairs[:n] if n and n > 0 else pairs


def load_experiment_data(params: RunParams, need_train: bool = True) -> ExperimentData:
    """Find, extract (once) and pair the data named by `params.data_source`."""
    work = params.resolved_work_dir()
    source = params.data_source
    if source == "kaggle":
        root = _find_kaggle_input()
    elif source == "synthetic":
        root = make_synthetic_corpus(work / "synthetic-archives", seed=params.seed)
    else:
        root = Path(source)
        if not root.is_dir():
            raise UserError(
                f"data_source={source!r}: folder not found; use 'kaggle', 'synthetic' or a folder"
            )
    if (root / "noisy").is_dir() and (root / "clean").is_dir():  # a folder of test pairs only
        if need_train:
            raise UserError(
                f"{root}: holds only noisy/ + clean/ test pairs; training needs the Kaggle archives"
            )
        train_all, test = [], discover_pairs(*find_pair_dirs(root))
    else:
        kaggle = prepare_kaggle_data(root, work / "extracted", need_train=need_train)
        train_all, test = kaggle.train, kaggle.test
    train_all = _limit(train_all, params.max_train_pairs)
    test = _limit(sorted(test, key=lambda p: p.name), params.max_test_pairs)
    train, val = (
        split_pairs(train_all, val_fraction=0.05, seed=params.seed) if train_all else ([], [])
    )
    info = {
        "source": source,
        "root": str(root),
        "train_pairs": len(train),
        "val_pairs": len(val),
        "test_pairs": len(test),
    }
    print(
        f"data: {source} ({root}): {len(train)} train / {len(val)} validation / {len(test)} test pairs"
    )
    return ExperimentData(train=train, val=val, test=test, info=info)


def alignment_report(data: ExperimentData, params: RunParams) -> float:
    """The guard against the team's crop bug: mean noisy/clean correlation of aligned crops."""
    pairs = data.train or data.test
    dataset = PairedDataset(
        pairs, segment_seconds=params.segment_seconds, train=bool(data.train), seed=params.seed
    )
    corr = check_alignment(dataset)
    data.info["alignment_corr"] = round(corr, 4)
    print(
        f"alignment check: mean noisy/clean correlation {corr:.3f} over {min(32, len(pairs))} pairs (passed)"
    )
    return corr


# --------------------------------------------------------------------------------- training


def loss_config(name: str) -> LossConfig:
    if name == "seed":
        return LossConfig.seed()
    if name == "compressed":
        return LossConfig()
    raise UserError(f"loss={name!r}: use 'seed' (L1 on log1p magnitude) or 'compressed'")


def train_config(params: RunParams, max_minutes: float | None = None) -> TrainConfig:
    """The trainer's settings; `max_minutes`: its own budget (default: the whole of the run's)."""
    return TrainConfig(
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        warmup_epochs=params.warmup_epochs,
        scheduler=params.scheduler,
        patience=params.patience,
        max_minutes=params.max_minutes if max_minutes is None else max_minutes,
        num_workers=params.num_workers,
        seed=params.seed,
        device=params.device,
    )


def _train_worker(
    params: RunParams,
    data: ExperimentData,
    out_dir: Path,
    stft_cfg: StftConfig,
    train_minutes: float | None = None,
) -> None:
    torch.manual_seed(params.seed)
    model = build_model(params.model, **params.model_config)
    trainer = Trainer(
        model,
        EnhancementLoss(loss_config(params.loss), stft_cfg),
        PairedDataset(data.train, params.segment_seconds, train=True, seed=params.seed),
        PairedDataset(data.val, params.segment_seconds, train=False, seed=params.seed)
        if data.val
        else None,
        train_config(params, train_minutes),
        stft_cfg,
        out_dir,
        resume_from=params.resume_checkpoint or None,
        data_info=data.info,
    )
    trainer.fit()


def locate_resume_checkpoint(spec: str) -> Path:
    """The checkpoint to resume from; on Kaggle, where the mount layout has changed over time
    (`/kaggle/input/<slug>/` vs `/kaggle/input/datasets/<owner>/<slug>/`), the same file name
    under a folder of the same slug is accepted too."""
    path = Path(spec)
    if path.is_file():
        return path
    base = Path("/kaggle/input")
    if base.is_dir() and str(path).startswith(str(base)) and len(path.parts) > 3:
        slug = path.parts[3]
        found = sorted(p for p in base.rglob(path.name) if slug in p.parts)
        if found:
            print(f"resume_checkpoint: {spec} not found; using {found[0]}")
            return found[0]
    raise UserError(
        f"resume_checkpoint={spec!r}: file not found; attach the earlier run's output or fix the path"
    )


def run_training(
    params: RunParams, data: ExperimentData, env: RunEnvironment, stft_cfg: StftConfig | None = None
) -> dict:
    """Train (resuming when asked) and return the trainer's summary from `history.json`."""
    out_dir = params.resolved_output_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    stft_cfg = stft_cfg or StftConfig()
    if params.resume_checkpoint:
        params.resume_checkpoint = str(locate_resume_checkpoint(params.resume_checkpoint))
    start = time.time()
    # Training gets what is left of the session less the evaluation's reserve.
    minutes = env.budget.training_minutes(params.eval_reserve)
    print(f"training budget: {minutes:.1f} min")
    launch_processes(_train_worker, env.nproc, args=(params, data, out_dir, stft_cfg, minutes))
    summary = json.loads((out_dir / "history.json").read_text())
    print(
        f"training finished in {time.time() - start:.0f} s: {summary.get('stop_reason')}, best epoch {summary.get('best_epoch')}"
    )
    return summary


# ------------------------------------------------------------------------------- evaluation


EVAL_FINISH_RESERVE_S = 120.0


@dataclass
class EnhancedSet:
    items: list[EvalItem]
    seconds: float  # wall-clock enhancement time of the whole set


def enhance_test_set(
    ckpt: str | Path,
    pairs: list[AudioPair],
    params: RunParams,
    device: torch.device,
    budget: SessionBudget | None = None,
) -> EnhancedSet:
    """Enhance each test file (whole, or a centred crop of `eval_seconds`) from its checkpoint.

    With a `budget`, files are enhanced only while enough of the session is left to score them
    and write the summary (the estimate grows with each file's measured cost): a shorter
    evaluation beats a session that Kaggle stops before `summary.json` exists.
    """
    enhancer = load_enhancer(ckpt, device=device)
    segment = params.eval_seconds if params.eval_seconds and params.eval_seconds > 0 else None
    dataset = PairedDataset(pairs, segment_seconds=segment, train=False, seed=params.seed)
    items, start = [], time.time()
    for i in range(len(dataset)):
        if budget is not None and items:
            per_item = (time.time() - start) / len(items)
            # Scoring costs about as much again as enhancing on the CPU; keep 2 min for the rest.
            needed = 2 * per_item * (len(items) + 1) + EVAL_FINISH_RESERVE_S
            if budget.remaining_s() < needed:
                print(
                    f"time budget: enhanced {len(items)} of {len(dataset)} test files; the rest "
                    "are skipped so that scoring and the summary finish inside the session"
                )
                break
        noisy, clean = (x.numpy() for x in dataset[i])
        enhanced = enhancer.enhance(noisy, SAMPLE_RATE)
        items.append(
            EvalItem(name=dataset.pairs[i].name, clean=clean, noisy=noisy, enhanced=enhanced)
        )
    return EnhancedSet(items=items, seconds=time.time() - start)


def evaluate_enhanced(enhanced: EnhancedSet, out_dir: Path) -> EvalResult:
    """Score the set, write the per-file CSV + summary JSON, print the table and plot it."""
    result = evaluate_pairs(enhanced.items)
    csv_path, json_path = write_results(result, out_dir)
    print(summary_table(result.summary))
    print(f"per-file results: {csv_path}; summary: {json_path}")
    plot_metric_table(result.summary, out_dir / "metrics.png")
    plot_metric_distributions(result.rows, out_dir / "metric_distributions.png")
    return result


# ---------------------------------------------------------------------------------- summary


def git_commit(build_info: dict | None = None) -> str | None:
    """The sources' commit: recorded by the builder in the notebook, else asked of git."""
    if build_info and build_info.get("git_commit"):
        return str(build_info["git_commit"])
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_summary(
    params: RunParams,
    *,
    params_count: int,
    train_summary: dict | None,
    metrics: dict,
    env: RunEnvironment,
    data: ExperimentData,
    build_info: dict | None = None,
    timings: dict | None = None,
) -> Path:
    """`summary.json`: what the leaderboard reads (never a number typed by hand)."""
    out_dir = params.resolved_output_dir()
    train_summary = train_summary or {}
    summary = {
        "model": params.model,
        "params": int(params_count),
        "config": asdict(params),
        "data": data.info,
        "device": env.description.get("gpus", [{}])[0].get("name")
        if env.description.get("gpus") and env.device.type == "cuda"
        else str(env.device),
        "nproc": env.nproc,
        "epochs": train_summary.get("epochs_done"),
        "best_epoch": train_summary.get("best_epoch"),
        "stop_reason": train_summary.get("stop_reason"),
        "train_seconds": train_summary.get("train_seconds"),
        "timings": timings or {},
        "git_commit": git_commit(build_info),
        "build": build_info or {},
        "kernel": os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and os.environ.get("KAGGLE_URL_BASE"),
        "metrics": metrics,
    }
    path = out_dir / "summary.json"
    path.write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False))
    print(f"wrote {path}")
    return path


def show_examples(enhanced: EnhancedSet, out_dir: Path, n: int = 3) -> None:
    """Spectrograms (saved and shown) and audio players for a few examples."""
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    for name, signals in example_signals(enhanced, n):
        plot_spectrograms(
            signals, title=name, path=out_dir / f"spectrogram_{name.replace('/', '_')}.png"
        )
        plt.show()
        for label, wav in signals.items():
            print(label)
            display(Audio(wav, rate=SAMPLE_RATE))


def example_signals(enhanced: EnhancedSet, n: int = 3) -> list[tuple[str, dict[str, np.ndarray]]]:
    """A few (name, {noisy, enhanced, clean}) examples, spread over the test set."""
    idx = (
        np.linspace(0, len(enhanced.items) - 1, num=min(n, len(enhanced.items))).round().astype(int)
    )
    return [
        (
            enhanced.items[i].name,
            {
                "noisy": enhanced.items[i].noisy,
                "enhanced": enhanced.items[i].enhanced,
                "clean": enhanced.items[i].clean,
            },
        )
        for i in sorted(set(idx.tolist()))
    ]


# -------------------------------------------------------------- evaluating an earlier run


def find_checkpoint(spec: str) -> Path:
    """`spec` is a path, or "auto": the newest best.pt under /kaggle/input (an attached earlier run)."""
    if spec and spec != "auto":
        path = Path(spec)
        if not path.is_file():
            raise UserError(
                f"checkpoint={spec!r}: file not found; give the path of a best.pt or last.pt"
            )
        return path
    base = Path("/kaggle/input")
    found = sorted(base.rglob("best.pt"), key=lambda p: p.stat().st_mtime) if base.is_dir() else []
    if not found:
        raise UserError(
            "checkpoint='auto' found no best.pt under /kaggle/input; attach an earlier run's output "
            "(kernel_sources) or set checkpoint to a path"
        )
    return found[-1]


def checkpoint_overview(path: Path) -> dict:
    """What a checkpoint says about its run: model, parameters, epochs, best validation loss."""
    state = load_checkpoint(path)
    model, _ = load_model(path)  # the checked path: a mismatched checkpoint is one line
    history = state.get("history", [])
    overview = {
        "checkpoint": str(path),
        "model": state["model_name"],
        "params": count_parameters(model),
        "epoch": state.get("epoch"),
        "step": state.get("step"),
        "best_epoch": state.get("best_epoch"),
        "best_val_loss": state.get("best_val_loss"),
        "train_seconds": state.get("train_seconds"),
        "history": history,
    }
    for key in ("model", "params", "epoch", "best_epoch", "best_val_loss"):
        print(f"{key}: {overview[key]}")
    return overview
