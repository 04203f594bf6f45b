"""`python -m common train`: train from a recipe (recipes/NAME.toml) or the defaults.

    python -m common train --recipe lite --out runs/lite     # the shipped checkpoint's recipe
    python -m common train --recipe lite --out runs/x --set train.lr=1e-3 --set data.mix_items=400
    python -m common train --model lite --data synthetic --out OUT --epochs 2   # defaults, no recipe
    python -m common train --model crn --data /kaggle/input/libri-speech-noise-dataset --out OUT
    python -m common train ... --resume OUT/last.pt          # continue exactly where it stopped
    python -m common train ... --overwrite                   # replace the run already in OUT

The run is one `RunConfig` (common/config.py): a recipe, or the defaults, with fields replaced by
`--set SECTION.KEY=VALUE` and by the short options below (each names the field it sets). It is
stored whole in every checkpoint and history.json; the notebooks, smoke and bench train through
the same `common.run` path.

--data is a Kaggle dataset root (archives or extracted folders), `synthetic` (a small generated
corpus in the Kaggle layout, with at least one --batch-size of training pairs) or `mix` (speech +
noise from --data-root, mixed on the fly with speaker-disjoint train/val splits).

Data-parallel: `--nproc N` starts N processes (one per GPU, or gloo on CPU); equivalently
`torchrun --nproc-per-node N -m common train ...`. --batch-size is the effective batch over all
processes and --lr applies to it unchanged, so results do not depend on N.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common.checkpoint import load_checkpoint
from common.checks import SettingError, path_arg, show, whole_arg
from common.cli import FLAG_FIELDS, add_command, option_for
from common.config import LossConfig, RunConfig, config_dict
from common.distributed import broadcast_from_main, cleanup_distributed, init_distributed
from common.errors import UserError
from common.models import model_names
from common.recipes import apply_overrides, load_recipe, parse_override, recipe_names
from common.run import TrainResult, check_model, prepare_data, train
from common.run_store import run_files

MAX_PROCESSES = 64
LOSS_PRESETS = {"compressed": LossConfig(), "seed": LossConfig.seed()}
# Short options (argparse dests) and the RunConfig field each one sets (common.cli.FLAG_FIELDS;
# unset options leave the recipe alone).
SHORT_OPTIONS = {
    option[2:].replace("-", "_"): field for option, field in FLAG_FIELDS["train"].items()
}


SHORT_OPTIONS_BY_FIELD = {field: dest for dest, field in SHORT_OPTIONS.items()}


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The fields the command line sets, by dotted name, in the order they apply."""
    out: dict[str, Any] = {}
    for option, key in SHORT_OPTIONS.items():
        value = getattr(args, option)
        if value is not None and value is not False:
            out[key] = list(value) if isinstance(value, tuple | list) else value
    if args.n_fft is not None and args.stft_hop is None:
        out["stft.hop_length"] = args.n_fft // 2
    if args.data is not None:
        if args.data in ("mix", "synthetic", "kaggle"):
            out["data.source"] = args.data
        else:
            root = Path(args.data)
            if not root.is_dir():
                raise UserError(
                    f"--data {args.data}: not a folder; give the Kaggle dataset root, "
                    "'synthetic' or 'mix'"
                )
            out["data.source"], out["data.root"] = "kaggle", str(root)
    if args.loss is not None:
        out.update(
            {
                f"loss.{k}": v
                for k, v in config_dict(RunConfig(loss=LOSS_PRESETS[args.loss]))["loss"].items()
            }
        )
    for item in args.model_config:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--model-config {item!r}: use KEY=VALUE, e.g. --model-config width=32")
        out[f"model.settings.{key}"] = parse_override(f"model.{key}={text}")[1]
    if args.no_amp:
        out["train.amp"] = False
    if args.no_progress:
        out["train.progress"] = False
    out.update(parse_override(item) for item in args.set)
    return out


def _as_given(exc: SettingError, args: argparse.Namespace) -> UserError:
    """`exc` naming the setting where the user gave it: the option, `--set`, `--model-config`
    or the recipe."""
    option = option_for("train", exc.field)
    given = getattr(args, SHORT_OPTIONS_BY_FIELD.get(exc.field, ""), None)
    if option and given is not None and given is not False:
        return exc.named(option)
    if exc.field == "stft.hop_length" and args.n_fft is not None and args.stft_hop is None:
        return UserError(f"--n-fft {args.n_fft} (hop n_fft/2): {exc}")
    if any(item.partition("=")[0].strip() == exc.field for item in args.set):
        return UserError(f"--set {exc}")
    key = exc.field.removeprefix("model.settings.")
    if any(item.partition("=")[0] == key for item in args.model_config):
        return UserError(f"--model-config {key}={show(exc.value)}: {exc.rule}")
    if args.recipe and not exc.source:
        return UserError(f"recipe {args.recipe}: {exc}")
    return exc


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    if args.recipe is None and args.model is None:
        raise UserError(
            f"give --recipe NAME ({', '.join(recipe_names())}) or --model NAME "
            f"({', '.join(model_names())})"
        )
    if args.recipe is None and args.data is None:
        raise UserError(
            "--data is needed without --recipe: a Kaggle dataset root, 'synthetic' or 'mix'"
        )
    cfg = load_recipe(args.recipe) if args.recipe else RunConfig()
    try:
        cfg = apply_overrides(cfg, overrides_from_args(args), where="option")
        if cfg.model.name not in model_names():
            raise SettingError(
                "model.name", cfg.model.name, f"unknown; choose one of {', '.join(model_names())}"
            )
        check_model(cfg)  # fail now, in one line, before any data is prepared
    except SettingError as exc:
        raise _as_given(exc, args) from None
    return cfg


def _check_out_folder(out: Path, resume: Path | None, overwrite: bool) -> list[Path]:
    """The earlier run's files in `out` that --overwrite will remove; refuses what would mix runs."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder; choose a folder for the run")
    existing = run_files(out)
    continuing = resume is not None and resume.resolve().parent == out.resolve()
    if overwrite and continuing:
        raise UserError(
            f"--overwrite would delete {resume}, the checkpoint --resume continues from; "
            "drop one of them"
        )
    if existing and not overwrite and not continuing:
        names = ", ".join(p.name for p in existing[:4]) + (" ..." if len(existing) > 4 else "")
        raise UserError(
            f"--out {out}: already holds a training run ({names}); continue it with "
            f"--resume {out / 'last.pt'}, or replace it with --overwrite"
        )
    return existing if overwrite else []


def _remove_run_files(files: list[Path]) -> None:
    # Only once the new run is about to start (settings checked, data prepared), so a refused
    # or failed start leaves the earlier run whole; and all of it, so no old file mixes in.
    for path in files:
        path.unlink(missing_ok=True)
    if files:
        print(f"--overwrite: removed the earlier run's {len(files)} files from {files[0].parent}")


def _report(result: TrainResult) -> None:
    summary = result.summary
    last = summary["history"][-1] if summary["history"] else {}
    print(
        f"stopped: {summary['stop_reason']} after {summary['step']} steps "
        f"({summary['epochs_done']} full epochs, {summary['train_seconds']:.0f} s on {summary['device']})"
    )
    if last.get("val_si_sdr") is not None:
        print(
            f"last validation: loss {last['val_loss']:.4f}, SI-SDR {last['val_si_sdr']:.2f} dB "
            f"(noisy input {last['val_si_sdr_noisy']:.2f} dB)"
        )
    print(f"best epoch: {summary['best_epoch']}; checkpoints: {result.best}, {result.last}")


def run_train(args: argparse.Namespace) -> int:
    cfg = run_config_from_args(args)
    out = Path(args.out)
    resume = Path(args.resume) if args.resume else None
    if resume is not None:
        load_checkpoint(resume)  # a missing or foreign file is reported before data preparation
    replaced = _check_out_folder(out, resume, args.overwrite)
    work = Path(cfg.data.work_dir) if cfg.data.work_dir != "auto" else out / "data"

    # Under torchrun every rank runs this: rank 0 alone prepares (extracts, checks) the data and
    # hands it to the others, so no two processes write the same files.
    info = init_distributed()
    data = prepare_data(cfg, work) if info.is_main else None
    if info.is_main:
        _remove_run_files(replaced)
    data = broadcast_from_main(data)
    try:
        # `spawn`: this process has used torch already, and forked workers would get one CPU
        # thread each; spawned ones share the cores.
        nproc = 1 if info.enabled else args.nproc
        result = train(cfg, data, out, resume, nproc, start_method="spawn")
    finally:
        if info.enabled:
            cleanup_distributed()
    if info.is_main:
        _report(result)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "train", __doc__)
    p.add_argument(
        "--recipe",
        type=path_arg,
        help=f"recipes/NAME.toml or a .toml path: {', '.join(recipe_names())}",
    )
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set any RunConfig field (repeatable), e.g. --set train.lr=1e-3")  # fmt: skip
    p.add_argument(
        "--out", type=path_arg, required=True, help="folder for checkpoints and history.json"
    )
    p.add_argument(
        "--resume", type=path_arg, default=None, metavar="CKPT", help="continue from OUT/last.pt"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="OUT holds an earlier run: delete its checkpoints and history when this run starts",
    )
    p.add_argument(
        "--nproc",
        type=whole_arg(1, MAX_PROCESSES),
        default=1,
        help=f"data-parallel processes (GPUs), 1 to {MAX_PROCESSES}",
    )
    short = p.add_argument_group("short options (each sets one field; default: the recipe's)")
    short.add_argument("--model", help=f"model.name: {', '.join(model_names())}")
    short.add_argument(
        "--data",
        type=path_arg,
        help="data.source (+ data.root): a Kaggle dataset root, 'synthetic' or 'mix'",
    )
    short.add_argument(
        "--data-root",
        help="data.root: speech/ + noise/ for mix (default $SHARED_DATA or ../shared/data)",
    )
    short.add_argument(
        "--work-dir", help="data.work_dir: where archives are extracted (default OUT/data)"
    )
    short.add_argument("--epochs", type=int, help="train.epochs")
    short.add_argument(
        "--max-minutes", type=float, help="train.max_minutes: wall-clock budget; saves and stops"
    )
    short.add_argument("--max-steps", type=int, help="train.max_steps: total optimizer steps")
    short.add_argument(
        "--batch-size", type=int, help="train.batch_size: effective batch over all processes"
    )
    short.add_argument("--segment-seconds", type=float, help="data.segment_seconds")
    short.add_argument("--lr", type=float, help="train.lr: for the effective batch (not rescaled)")
    short.add_argument(
        "--loss",
        choices=sorted(LOSS_PRESETS),
        help="loss.*: compressed (GTCRN-style compressed spectra + SI-SDR) or seed (L1 on log1p magnitude)",
    )
    short.add_argument("--scheduler", choices=("plateau", "cosine"), help="train.scheduler")
    short.add_argument("--warmup-epochs", type=float, help="train.warmup_epochs")
    short.add_argument("--patience", type=int, help="train.patience: early stopping; 0 disables")
    short.add_argument(
        "--checkpoint-every", type=int, help="train.checkpoint_every: epoch_NNN.pt every N epochs"
    )
    short.add_argument("--seed", type=int, help="train.seed")
    short.add_argument(
        "--workers",
        type=int,
        help="train.num_workers: DataLoader workers per process (0: load in the training process)",
    )
    short.add_argument("--n-fft", type=int, help="stft.n_fft: STFT window (512 = 32 ms)")
    short.add_argument("--stft-hop", type=int, help="stft.hop_length (default n_fft / 2)")
    short.add_argument("--val-fraction", type=float, help="data.val_fraction: paired data held out")
    short.add_argument("--mix-items", type=int, help="data.mix_items: mixtures per epoch (mix)")
    short.add_argument(
        "--snr",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="data.snr_db: SNR range in dB (mix)",
    )
    short.add_argument(
        "--exclude-noncommercial",
        action="store_true",
        help="data.exclude_noncommercial: leave out files whose licence forbids a shipped model (mix)",
    )
    short.add_argument(
        "--model-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model.settings.KEY (repeatable), e.g. width=32",
    )
    short.add_argument("--device", choices=("auto", "cpu", "cuda"), help="train.device")
    short.add_argument("--no-amp", action="store_true", help="train.amp = false: fp32 on CUDA too")
    short.add_argument("--no-progress", action="store_true", help="train.progress = false")
    p.set_defaults(func=run_train)
