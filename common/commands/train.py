"""`python -m common train`: train a model on the Kaggle pairs, the synthetic corpus or live mixtures.

    python -m common train --model lite --data mix --out runs/lite --max-minutes 30
    python -m common train --model crn --data /kaggle/input/libri-speech-noise-dataset --out OUT
    python -m common train --model lite --data synthetic --out OUT --epochs 2
    python -m common train ... --resume OUT/last.pt          # continue exactly where it stopped
    python -m common train ... --overwrite                   # replace the run already in OUT
    python -m common train --model lite ... --n-fft 128 --stft-hop 64 \
        --model-config erb_low=17 --model-config erb_bands=16   # 8 ms window (low latency)

--data is a Kaggle dataset root (archives or extracted folders), `synthetic` (a small generated
corpus in the Kaggle layout, written to the work dir, with at least one --batch-size of training
pairs) or `mix` (speech + noise from --data-root,
mixed on the fly with speaker-disjoint train/val splits from common.mixing).

Data-parallel: `--nproc N` starts N processes (one per GPU, or gloo on CPU); equivalently
`torchrun --nproc-per-node N -m common train ...`. --batch-size is the effective batch over all
processes and --lr applies to it unchanged, so results do not depend on N.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from common.audio import StftConfig
from common.checkpoint import load_checkpoint, run_files
from common.distributed import (
    broadcast_from_main,
    cleanup_distributed,
    init_distributed,
    launch_processes,
)
from common.errors import UserError
from common.losses import EnhancementLoss, LossConfig
from common.models import MODEL_REGISTRY, build_model, model_names
from common.train import TrainConfig, Trainer, seed_everything

LOSS_PRESETS = ("compressed", "seed")
SYNTHETIC_MIN_PAIRS = 16  # `--data synthetic`: training pairs written (more for a larger batch)


def _loss_config(name: str) -> LossConfig:
    # Same presets as the notebooks (common.experiment.loss_config).
    return LossConfig.seed() if name == "seed" else LossConfig()


def _default_data_root() -> Path:
    return Path(os.environ.get("SHARED_DATA", "../shared/data"))


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be 0 or more")
    return value


def _value_fits(value: object, default: object) -> bool:
    # The config dataclasses hold ints, floats, bools, strings and tuples; JSON gives lists.
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return default is None or isinstance(value, type(default))


def _check_model_config(model: str, config: dict) -> None:
    """Each --model-config value has the type of the setting it replaces, and the model builds."""
    cfg_cls = MODEL_REGISTRY[model][1]
    defaults = cfg_cls()
    for f in dataclasses.fields(cfg_cls):
        if f.name in config and not _value_fits(config[f.name], getattr(defaults, f.name)):
            expected = type(getattr(defaults, f.name)).__name__
            raise UserError(
                f"--model-config {f.name}={config[f.name]!r}: {model} expects type {expected} "
                f"(default {getattr(defaults, f.name)!r}); e.g. {f.name}={getattr(defaults, f.name)}"
            )
    try:
        build_model(model, **config)  # fail now, in one line, before any data is prepared
    except UserError:
        raise
    except Exception as exc:  # a model's own checks: channel counts, divisibility, ...
        settings = " ".join(f"{k}={v}" for k, v in config.items() if k != "n_freq")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"--model-config {settings or '(defaults)'}: {model} cannot be built with these "
            f"settings ({reason}); change them"
        ) from None


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


def _parse_model_config(items: list[str]) -> dict:
    """KEY=VALUE pairs; values are JSON when they parse (numbers, true/false, lists), else text."""
    config = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--model-config {item!r}: use KEY=VALUE, e.g. --model-config width=32")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return config


@dataclass
class TrainJob:
    """Everything one training process needs (picklable, for spawned data-parallel workers)."""

    model: str
    model_config: dict
    train_set: object
    val_set: object
    cfg: TrainConfig
    stft: StftConfig
    loss: LossConfig
    out: Path
    resume: Path | None
    data_info: dict


def _paired_sets(args: argparse.Namespace, root: Path, work: Path) -> tuple[object, object, dict]:
    from common.data import PairedDataset, check_alignment, prepare_kaggle_data, split_pairs

    kaggle = prepare_kaggle_data(root, work / "extracted")
    train_pairs, val_pairs = split_pairs(kaggle.train, args.val_fraction, args.seed)
    train_set = PairedDataset(train_pairs, args.segment_seconds, train=True, seed=args.seed)
    val_set = (
        PairedDataset(val_pairs, args.segment_seconds, train=False, seed=args.seed)
        if val_pairs
        else None
    )
    corr = check_alignment(train_set)  # the guard against the team's misaligned-crop bug
    print(f"alignment check: mean noisy/clean correlation {corr:.3f} (passed)")
    info = {
        "source": args.data,
        "root": str(root),
        "train_pairs": len(train_set),
        "val_pairs": len(val_set) if val_set else 0,
        "alignment_corr": round(corr, 4),
    }
    return train_set, val_set, info


def _mix_sets(args: argparse.Namespace) -> tuple[object, object, dict]:
    from common.mixing import MixConfig, MixingDataset, real_corpus_splits

    root = Path(args.data_root)
    splits = real_corpus_splits(
        root, seed=args.seed, exclude_noncommercial=args.exclude_noncommercial
    )
    mix = MixConfig(snr_db=tuple(args.snr), segment_seconds=args.segment_seconds, seed=args.seed)
    train_set = MixingDataset(
        splits["train"].speech, splits["train"].noise, mix, True, args.mix_items
    )
    val_set = MixingDataset(
        splits["val"].speech,
        splits["val"].noise,
        mix,
        False,
        max(args.batch_size, args.mix_items // 20),
    )
    info = {
        "source": "mix",
        "root": str(root),
        "train_speech_files": len(splits["train"].speech),
        "train_noise_files": len(splits["train"].noise),
        "items_per_epoch": len(train_set),
        "snr_db": list(args.snr),
        "exclude_noncommercial": bool(args.exclude_noncommercial),
        "val_items": len(val_set),
    }
    return train_set, val_set, info


def _synthetic_train_pairs(batch_size: int, val_fraction: float) -> int:
    """The synthetic corpus's size: the default 16 pairs, or more when the training split (what
    --val-fraction leaves) would hold less than one --batch-size."""
    from common.data import validation_count

    n = SYNTHETIC_MIN_PAIRS
    while n - validation_count(n, val_fraction) < batch_size:
        n += 1
    return n


def _datasets(args: argparse.Namespace, out: Path) -> tuple[object, object, dict]:
    work = Path(args.work_dir) if args.work_dir else out / "data"
    if args.data == "mix":
        return _mix_sets(args)
    if args.data == "synthetic":
        from common.synthetic import make_synthetic_corpus

        n_train = _synthetic_train_pairs(args.batch_size, args.val_fraction)
        root = make_synthetic_corpus(work / "synthetic", n_train=n_train, seed=args.seed)
        return _paired_sets(args, root, work)
    root = Path(args.data)
    if not root.is_dir():
        raise UserError(
            f"--data {args.data}: not a folder; give the Kaggle dataset root, 'synthetic' or 'mix'"
        )
    return _paired_sets(args, root, work)


def _run_job(job: TrainJob) -> dict:
    seed_everything(job.cfg.seed)
    model = build_model(job.model, **job.model_config)
    trainer = Trainer(
        model,
        EnhancementLoss(job.loss, job.stft),
        job.train_set,
        job.val_set,
        job.cfg,
        job.stft,
        job.out,
        resume_from=job.resume,
        data_info=job.data_info,
    )
    return trainer.fit()


def _report(out: Path) -> None:
    summary = json.loads((out / "history.json").read_text())
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
    print(f"best epoch: {summary['best_epoch']}; checkpoints: {out}/best.pt, {out}/last.pt")


def run_train(args: argparse.Namespace) -> int:
    if args.model not in model_names():
        raise UserError(
            f"--model {args.model!r}: unknown; choose one of {', '.join(model_names())}"
        )
    out = Path(args.out)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_epochs=args.warmup_epochs,
        scheduler=args.scheduler,
        patience=args.patience,
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        checkpoint_every=args.checkpoint_every,
        num_workers=args.workers,
        seed=args.seed,
        amp=not args.no_amp,
        device=args.device,
        progress=not args.no_progress,
    )
    stft_cfg = StftConfig(n_fft=args.n_fft, hop_length=args.stft_hop or args.n_fft // 2)
    model_config = _parse_model_config(args.model_config)
    n_freq = model_config.setdefault("n_freq", stft_cfg.n_freq)
    if n_freq != stft_cfg.n_freq:
        raise UserError(
            f"--model-config n_freq={n_freq} does not match --n-fft {args.n_fft} "
            f"({stft_cfg.n_freq} bins); drop n_freq, it follows --n-fft"
        )
    _check_model_config(args.model, model_config)
    resume = Path(args.resume) if args.resume else None
    if resume is not None:
        load_checkpoint(resume)  # a missing or foreign file is reported before data preparation
    replaced = _check_out_folder(out, resume, args.overwrite)

    # Under torchrun every rank runs this: rank 0 alone prepares (extracts, checks) the data and
    # hands the datasets to the others, so no two processes write the same files.
    info = init_distributed()
    datasets = _datasets(args, out) if info.is_main else None
    if info.is_main:
        _remove_run_files(replaced)
    train_set, val_set, data_info = broadcast_from_main(datasets)
    job = TrainJob(
        args.model, model_config, train_set, val_set, cfg, stft_cfg, _loss_config(args.loss),
        out, resume, data_info,
    )  # fmt: skip
    try:
        if info.enabled or args.nproc == 1:
            _run_job(job)
        else:
            # `spawn`: this process has used torch already, and forked workers would get one
            # CPU thread each; spawned ones share the cores.
            launch_processes(_run_job, args.nproc, (job,), start_method="spawn")
    finally:
        if info.enabled:
            cleanup_distributed()
    if info.is_main:
        _report(out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help=f"one of: {', '.join(model_names())}")
    p.add_argument("--data", required=True, help="Kaggle dataset root, 'synthetic' or 'mix'")
    p.add_argument("--out", required=True, help="folder for checkpoints and history.json")
    p.add_argument(
        "--data-root", default=str(_default_data_root()), help="speech/ + noise/ for --data mix"
    )
    p.add_argument(
        "--work-dir", default=None, help="where archives are extracted (default OUT/data)"
    )
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument(
        "--max-minutes", type=float, default=None, help="wall-clock budget; saves and stops"
    )
    p.add_argument("--max-steps", type=int, default=None, help="total optimizer steps")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from OUT/last.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="OUT holds an earlier run: delete its checkpoints and history when this run starts",
    )
    p.add_argument("--batch-size", type=int, default=16, help="effective batch over all processes")
    p.add_argument("--segment-seconds", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1e-3, help="for the effective batch (not rescaled)")
    p.add_argument("--loss", choices=LOSS_PRESETS, default="compressed",
                   help="compressed: GTCRN-style compressed spectra + SI-SDR; seed: L1 on log1p magnitude")  # fmt: skip
    p.add_argument("--scheduler", choices=("plateau", "cosine"), default="plateau")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--patience", type=int, default=10, help="early stopping; 0 disables")
    p.add_argument("--checkpoint-every", type=int, default=5, help="epoch_NNN.pt every N epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=_non_negative_int, default=2,
                   help="DataLoader workers per process (0: load in the training process)")  # fmt: skip
    p.add_argument("--n-fft", type=int, default=512, help="STFT window (512 = 32 ms)")
    p.add_argument("--stft-hop", type=int, default=None, help="STFT hop (default n_fft / 2)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="paired data held out")
    p.add_argument("--mix-items", type=int, default=2000, help="--data mix: mixtures per epoch")
    p.add_argument(
        "--snr",
        type=float,
        nargs=2,
        default=(5.0, 20.0),
        metavar=("LOW", "HIGH"),
        help="--data mix: SNR range in dB (default 5 20)",
    )
    p.add_argument(
        "--exclude-noncommercial",
        action="store_true",
        help="--data mix: leave out files whose licence forbids a shipped model (MANIFEST.csv)",
    )
    p.add_argument("--model-config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model setting (repeatable), e.g. width=32")  # fmt: skip
    p.add_argument("--nproc", type=int, default=1, help="data-parallel processes (GPUs)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)
