"""The steps every notebook shares, so that notebook sources stay thin and read top to bottom:
the run's configuration (a recipe with overrides), the environment and time budget, evaluation
on the test pairs from real waveforms, example figures, and the run's `summary.json` (written
atomically, as every file of a run, by `common.run_store`). The training notebook's own steps
are `common.training_steps`; the evaluation notebook's, `common.evaluation_steps`."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.audio import SAMPLE_RATE
from common.budget import SessionBudget
from common.checks import SettingError, number, text
from common.config import MAX_MINUTES, EvalConfig, RunConfig, config_dict
from common.enhance import load_enhancer
from common.env import (
    EnvInfo,
    describe_environment,
    format_environment,
    running_on_kaggle,
    select_device,
)
from common.errors import UserError
from common.evaluation import EvalItem, EvalResult, evaluate_pairs, summary_table, write_results
from common.examples import choose_examples, save_examples
from common.kaggle_paths import KAGGLE_WORKING
from common.paired_dataset import PairedDataset
from common.pairs import AudioPair
from common.plots import plot_metric_distributions, plot_metric_table, plot_spectrograms
from common.provenance import git_head
from common.recipes import apply_overrides, load_recipe
from common.run import RunData, check_model
from common.run_store import RunStore
from common.stats import headline

MAX_PROCESSES = 64


@dataclass
class Session:
    """What a notebook run needs beyond the RunConfig: where it writes, its time budget, how many
    processes, and the checkpoint it continues from (the notebook's parameters cell)."""

    name: str
    output_dir: str = "auto"  # /kaggle/working on Kaggle, outputs/<name> elsewhere
    # The whole notebook's budget, counted from its first cell (installs, extraction, training,
    # evaluation, figures): Kaggle stops a session at 720 minutes whatever it is doing.
    max_minutes: float = 690.0
    resume_checkpoint: str = ""
    nproc: str | int = "auto"  # data-parallel processes: "auto" = one per usable GPU

    def __post_init__(self) -> None:
        """The parameters cell's values, checked like every configuration (common.checks)."""
        text("name", self.name)
        text("output_dir", self.output_dir)
        number("max_minutes", self.max_minutes, 0, MAX_MINUTES, lo_open=True)
        if not isinstance(self.resume_checkpoint, str):
            raise SettingError("resume_checkpoint", self.resume_checkpoint, "give a path or ''")
        if self.nproc != "auto":
            number("nproc", self.nproc, 1, MAX_PROCESSES, whole=True)

    def out_dir(self) -> Path:
        if self.output_dir != "auto":
            path = Path(self.output_dir)
        else:
            path = KAGGLE_WORKING if running_on_kaggle() else Path("outputs") / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path


def work_dir(cfg: RunConfig) -> Path:
    """Where archives are extracted: the input mount is read-only and /kaggle/working is kept
    as output, so on Kaggle elsewhere."""
    if cfg.data.work_dir != "auto":
        return Path(cfg.data.work_dir)
    return Path("/tmp/se-data") if running_on_kaggle() else Path("work")


def notebook_config(recipe: str, overrides: dict) -> RunConfig:
    """The recipe with the notebook's overrides, checked (one line naming a bad field)."""
    cfg = apply_overrides(load_recipe(recipe), overrides or {}, where="overrides")
    check_model(cfg)
    return cfg


def show_config(cfg: RunConfig) -> None:
    """The configuration as the reviewer should read it: every field, by section."""
    values = config_dict(cfg)
    print(f"recipe: {values.pop('recipe')}")
    values.pop("description", None)
    for section, fields in values.items():
        print(f"[{section}]")
        for key, value in fields.items():
            print(f"  {key} = {json.dumps(value)}")


# ------------------------------------------------------------------------------ environment


@dataclass
class RunEnvironment:
    device: torch.device
    nproc: int
    description: dict
    budget: SessionBudget


def _refuse_cpu_training_on_kaggle(cfg: RunConfig, env: EnvInfo, device: torch.device) -> None:
    """On Kaggle with the real data, a CPU fallback would spend the session training ~60x slower."""
    if device.type != "cpu" or cfg.train.device == "cpu" or cfg.data.source == "synthetic":
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
        "'GPU T4 x2' (machine_shape NvidiaTeslaT4), or set overrides = "
        "{'train.device': 'cpu'} in the parameters cell to train on the CPU anyway"
    )


def eval_reserve_minutes(cfg: RunConfig, session: Session) -> float:
    if cfg.evaluate.reserve_minutes is not None:
        return float(cfg.evaluate.reserve_minutes)
    return 0.02 * session.max_minutes  # 14 min of a 690-min session


def setup_environment(cfg: RunConfig, session: Session, training: bool = True) -> RunEnvironment:
    """Choose the device and the number of data-parallel processes, and say why.

    A notebook that trains on real data on Kaggle stops here, in one line, when it would fall
    back to the CPU (unless `train.device = "cpu"` asks for it); evaluation may run on the CPU.
    """
    budget = SessionBudget.for_notebook(session.max_minutes)
    env = describe_environment()
    device = select_device(cfg.train.device, env)
    if training:
        _refuse_cpu_training_on_kaggle(cfg, env, device)
    usable = [g for g in env.gpus if g.supported]
    if session.nproc == "auto":
        nproc = len(usable) if device.type == "cuda" and len(usable) > 1 else 1
    else:
        nproc = max(1, int(session.nproc))
    print(format_environment(env, device))
    mode = f"data-parallel on {nproc} processes (DDP)" if nproc > 1 else "single process"
    print(f"training mode: {mode}")
    print(
        f"time budget: {session.max_minutes:g} min from the notebook's first cell "
        f"({budget.elapsed_s() / 60:.1f} min gone), {eval_reserve_minutes(cfg, session):g} min "
        "kept for evaluation"
    )
    return RunEnvironment(
        device=device,
        nproc=nproc,
        description={**env.to_dict(), "device": str(device), "nproc": nproc},
        budget=budget,
    )


# ------------------------------------------------------------------------------- evaluation


EVAL_FINISH_RESERVE_S = 120.0


@dataclass
class EnhancedSet:
    items: list[EvalItem]
    seconds: float  # wall-clock enhancement time of the whole set


def enhance_test_set(
    ckpt: str | Path,
    pairs: list[AudioPair],
    evaluate: EvalConfig,
    device: torch.device | None,
    budget: SessionBudget | None = None,
    seed: int = 0,
) -> EnhancedSet:
    """Enhance each test file (whole, or a centred crop of `eval_seconds`) from its checkpoint.

    With a `budget`, files are enhanced only while enough of the session is left to score them
    and write the summary (the estimate grows with each file's measured cost): a shorter
    evaluation beats a session that Kaggle stops before `summary.json` exists.
    """
    enhancer = load_enhancer(ckpt, device=device)
    segment = evaluate.eval_seconds if evaluate.eval_seconds > 0 else None
    dataset = PairedDataset(pairs, segment_seconds=segment, train=False, seed=seed)
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


def evaluate_enhanced(enhanced: EnhancedSet, out_dir: Path, dnsmos: bool = True) -> EvalResult:
    """Score the set (PESQ-wb, STOI, ESTOI, SI-SDR and, with `dnsmos`, DNSMOS), write the
    per-file CSV + summary JSON, print the table and plot it."""
    result = evaluate_pairs(enhanced.items, dnsmos=dnsmos)
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
    return git_head()


def write_run_summary(
    cfg: RunConfig,
    session: Session,
    *,
    params_count: int,
    train_summary: dict | None,
    metrics: dict,
    env: RunEnvironment,
    data: RunData,
    build_info: dict | None = None,
    timings: dict | None = None,
    gmacs_per_s: float | None = None,
    history: list | None = None,
) -> Path:
    """`summary.json`: what the leaderboard reads (never a number typed by hand), with the
    configuration stored whole."""
    out_dir = session.out_dir()
    train_summary = train_summary or {}
    summary = {
        "model": cfg.model.name,
        "recipe": cfg.recipe,
        "params": int(params_count),
        "config": config_dict(cfg),
        "data": data.info,
        "device": env.description.get("gpus", [{}])[0].get("name")
        if env.description.get("gpus") and env.device.type == "cuda"
        else str(env.device),
        "nproc": env.nproc,
        "gmacs_per_s": gmacs_per_s,
        "steps": train_summary.get("step"),
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
    if history is not None:  # an evaluation: the checkpoint's training history (no history.json)
        summary["history"] = history
    path = RunStore(out_dir).write_json("summary.json", summary)
    print(f"wrote {path}")
    return path


def show_examples(enhanced: EnhancedSet, out_dir: Path, n: int = 3) -> None:
    """Save the fixed listening examples (examples/: every run saves the same test files, so the
    report plays runs side by side), and show spectrograms and audio players for `n` of them."""
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    index = save_examples(enhanced.items, out_dir)
    print(f"listening examples: {index.parent} (noisy, enhanced, clean)")
    for name, signals in example_signals(enhanced, n):
        plot_spectrograms(
            signals, title=name, path=out_dir / f"spectrogram_{name.replace('/', '_')}.png"
        )
        plt.show()
        for label, wav in signals.items():
            print(label)
            display(Audio(wav, rate=SAMPLE_RATE))


def example_signals(enhanced: EnhancedSet, n: int = 3) -> list[tuple[str, dict[str, np.ndarray]]]:
    """A few (name, {noisy, enhanced, clean}) examples: the first `n` of the fixed choice."""
    by_name = {item.name: item for item in enhanced.items}
    return [
        (
            name,
            {
                "noisy": by_name[name].noisy,
                "enhanced": by_name[name].enhanced,
                "clean": by_name[name].clean,
            },
        )
        for name in choose_examples(by_name)[:n]
    ]


def show_headline(rows: list[dict]) -> None:
    """The run's headline numbers: noisy, enhanced and their paired difference, with intervals."""
    print(headline(rows))
