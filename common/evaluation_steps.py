"""The evaluation notebook's steps (notebooks_src/evaluate.py): find an earlier run's checkpoint,
say what it holds, evaluate it with the configuration it was trained with, and write its
`summary.json`. It never trains. The shared steps are `common.experiment`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.checkpoint import load_checkpoint
from common.config import RunConfig, config_from_dict
from common.enhance import load_model
from common.errors import UserError
from common.evaluation import EvalResult
from common.experiment import (
    EnhancedSet,
    RunEnvironment,
    Session,
    enhance_test_set,
    evaluate_enhanced,
    setup_environment,
    show_config,
    write_run_summary,
)
from common.kaggle_paths import kaggle_input_files
from common.model_table import model_blocks
from common.models import count_parameters
from common.recipes import apply_overrides
from common.run import RunData


def find_checkpoint(spec: str) -> Path:
    """`spec` is a path, or "auto": the newest best.pt under /kaggle/input (an attached earlier run)."""
    if spec and spec != "auto":
        path = Path(spec)
        if not path.is_file():
            raise UserError(
                f"checkpoint={spec!r}: file not found; give the path of a best.pt or last.pt"
            )
        return path
    found = sorted(kaggle_input_files("best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(
            "checkpoint='auto' found no best.pt under /kaggle/input; attach an earlier run's output "
            "(kernel_sources) or set checkpoint to a path"
        )
    return found[-1]


def checkpoint_overview(path: Path) -> dict:
    """What a checkpoint says about its run: model, parameters, epochs, best validation loss."""
    state = load_checkpoint(path)
    model, stft_cfg = load_model(path)  # the checked path: a mismatched checkpoint is one line
    history = state.get("history", [])
    _, macs = model_blocks(model, stft_cfg)
    overview = {
        "checkpoint": str(path),
        "model": state["model_name"],
        "params": count_parameters(model),
        "gmacs_per_s": macs / 1e9,
        "epoch": state.get("epoch"),
        "step": state.get("step"),
        "best_epoch": state.get("best_epoch"),
        "best_val_loss": state.get("best_val_loss"),
        "train_seconds": state.get("train_seconds"),
        "history": history,
    }
    # Older checkpoints predate the stored RunConfig: their model and STFT are still known.
    overview["config"] = state.get("run_config") or {
        "model": {"name": state["model_name"], "settings": state.get("model_config", {})},
        "stft": state.get("stft", {}),
    }
    for key in ("model", "params", "epoch", "best_epoch", "best_val_loss"):
        print(f"{key}: {overview[key]}")
    return overview


def evaluation_config(overview: dict, overrides: dict) -> RunConfig:
    """The configuration to evaluate a checkpoint with: the one it was trained with (older
    checkpoints: the defaults for its model), with the notebook's overrides."""
    stored = overview.get("config") or {"model": {"name": overview["model"]}}
    base = config_from_dict(stored, where=f"{overview['checkpoint']} run_config")
    return apply_overrides(base, overrides or {}, where="overrides")


@dataclass
class CheckpointRun:
    """An earlier run's checkpoint opened for evaluation: what it says, its configuration (with
    the notebook's overrides), where the outputs go and on which device."""

    ckpt: Path
    overview: dict
    config: RunConfig
    session: Session
    env: RunEnvironment

    @property
    def out_dir(self) -> Path:
        return self.session.out_dir()


def open_checkpoint(checkpoint: str, overrides: dict, name: str, output_dir: str) -> CheckpointRun:
    """Find the checkpoint, print what it says and the configuration it is evaluated with."""
    ckpt = find_checkpoint(checkpoint)
    overview = checkpoint_overview(ckpt)
    config = evaluation_config(overview, overrides)
    show_config(config)
    session = Session(name, output_dir)
    return CheckpointRun(ckpt, overview, config, session, setup_environment(config, session, False))


def evaluate_checkpoint(run: CheckpointRun, data: RunData) -> tuple[EnhancedSet, EvalResult]:
    """Enhance the test pairs with the checkpoint and score them (figures saved and drawn)."""
    enhanced = enhance_test_set(
        run.ckpt, data.test, run.config.evaluate, run.env.device, run.env.budget,
        run.config.train.seed,
    )  # fmt: skip
    return enhanced, evaluate_enhanced(enhanced, run.out_dir, run.config.evaluate.dnsmos)


def write_evaluation_summary(
    run: CheckpointRun,
    data: RunData,
    result: EvalResult,
    enhanced: EnhancedSet,
    build_info: dict | None = None,
) -> Path:
    """`summary.json` of an evaluation: the checkpoint's own training figures, new metrics."""
    o = run.overview
    return write_run_summary(
        run.config,
        run.session,
        params_count=o["params"],
        train_summary={
            "epochs_done": o["epoch"],
            "step": o["step"],
            "best_epoch": o["best_epoch"],
            "train_seconds": o["train_seconds"],
            "stop_reason": "evaluation only",
        },
        metrics=result.summary,
        env=run.env,
        data=data,
        build_info=build_info,
        timings={"enhance_seconds": enhanced.seconds, "checkpoint": str(run.ckpt)},
        gmacs_per_s=o.get("gmacs_per_s"),
        history=o["history"],
    )
