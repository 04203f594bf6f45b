"""`python -m common evaluate`: PESQ-wb, STOI, ESTOI, SI-SDR and DNSMOS of a folder.

    python -m common evaluate --pairs DIR [--enhanced DIR | --ckpt CKPT] [--out DIR] [--workers N]
    python -m common evaluate --noisy-only DIR [--enhanced DIR | --ckpt CKPT] [--out DIR]

--pairs DIR holds noisy/ + clean/ (or Kaggle's test/ + y_test/). Without --enhanced the noisy
files are scored against the clean ones (the baseline); with it, the enhanced files (same names;
.wav and .flac match each other) are scored too and the delta is reported. A pair whose files do
not line up (shifted in time, or two different recordings) is named in a warning and in the
summary. DNSMOS (SIG, BAK, OVRL, P.808; no reference needed) is an extra column unless
--no-dnsmos.

--noisy-only DIR is a folder of recordings without clean references (every WAV/FLAC below it):
they can only be scored by DNSMOS, the noisy input and, with --enhanced, the enhanced files.

--ckpt CKPT enhances the noisy files with a checkpoint (in memory, at 16 kHz mono, as they are
scored) instead of reading them from --enhanced; `enhance` writes such files. With --pairs, OUT
then becomes a run folder like a notebook's outputs, which `make report RUNS=OUT` compares with
other runs: summary.json (the checkpoint's model, size, configuration and training history) and
examples/ (the fixed listening examples: noisy, enhanced, clean; --enhanced writes them too).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE, list_audio, load_audio
from common.checks import path_arg, whole_arg
from common.cli import add_command
from common.errors import UserError
from common.evaluation import EvalItem, evaluate_pairs, summary_table, write_results
from common.pairs import audio_root, discover_pairs, find_pair_dirs
from common.progress import progress as progress_bar
from common.stats import headline

DEFAULT_EVAL_OUT = Path("results") / "evaluate"
MAX_WORKERS = 256


def path_type(text: str) -> Path:
    return Path(path_arg(text))


def _stem_key(relative: str | Path) -> str:
    # Same pairing rule as common.pairs: relative path without the suffix.
    return Path(relative).with_suffix("").as_posix()


def _audio_files(folder: Path, option: str) -> tuple[Path, list[Path]]:
    """The audio root of the folder `option` names and the WAV/FLAC files below it (at least
    one)."""
    if not folder.is_dir():
        raise UserError(f"{option} {folder}: folder not found; check the path")
    root = audio_root(folder)
    files = list_audio(root)
    if not files:
        raise UserError(f"{option} {folder}: no .wav/.flac files; check the path")
    return root, files


def _enhanced_by_key(enhanced_dir: Path) -> dict[str, Path]:
    root, files = _audio_files(enhanced_dir, "--enhanced")
    return {_stem_key(p.relative_to(root)): p for p in files}


def _with_enhanced(items: list[EvalItem], enhanced_dir: Path | None) -> list[EvalItem]:
    """Every item with its enhanced file; each must have one when `enhanced_dir` is given."""
    if enhanced_dir is None:
        return items
    enhanced = _enhanced_by_key(enhanced_dir)
    missing = [item.name for item in items if _stem_key(item.name) not in enhanced]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise UserError(
            f"--enhanced {enhanced_dir}: {len(missing)} of {len(items)} files missing ({shown}); "
            "enhance every noisy file or point --enhanced at the right folder"
        )
    return [replace(item, enhanced=enhanced[_stem_key(item.name)]) for item in items]


def build_eval_items(pairs_dir: Path, enhanced_dir: Path | None) -> list[EvalItem]:
    """One EvalItem per pair; every pair must have an enhanced file when `enhanced_dir` is given."""
    pairs = discover_pairs(*find_pair_dirs(pairs_dir))
    items = [EvalItem(p.name, clean=p.clean, noisy=p.noisy) for p in pairs]
    return _with_enhanced(items, enhanced_dir)


def build_noisy_only_items(noisy_dir: Path, enhanced_dir: Path | None) -> list[EvalItem]:
    """One EvalItem without a clean reference per WAV/FLAC file below `noisy_dir`."""
    root, files = _audio_files(noisy_dir, "--noisy-only")
    items = [EvalItem(p.relative_to(root).as_posix(), clean=None, noisy=p) for p in files]
    return _with_enhanced(items, enhanced_dir)


def enhance_items(items: list[EvalItem], ckpt: Path, progress: bool) -> list[EvalItem]:
    """Each item's noisy file enhanced by the checkpoint, in memory, at 16 kHz mono."""
    from common.enhance import load_enhancer

    enhancer = load_enhancer(ckpt)
    enhanced: list[EvalItem] = []
    for item in progress_bar(items, desc="enhance", unit="file", disable=not progress):
        try:
            wav = load_audio(item.noisy, SAMPLE_RATE, warn=True)
            out = enhancer.enhance(wav, SAMPLE_RATE)
        except UserError as exc:
            # Named here, then recorded as this file's failure: the other files are still scored.
            warnings.warn(f"{item.name}: not enhanced ({exc})", stacklevel=2)
            out = None
        enhanced.append(replace(item, enhanced=out))
    return enhanced


RESULT_FILES = ("eval_per_file.csv", "eval_summary.json")


def _check_out_dir(out: Path, overwrite: bool) -> None:
    # Before the (long) scoring, not at the end: a file in the way is the user's to move, and
    # an earlier evaluation's results are the user's to keep.
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UserError(
            f"--out {out}: {blocker} is a file, not a folder; give a folder for "
            "eval_per_file.csv and eval_summary.json"
        )
    earlier = [name for name in RESULT_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise UserError(
            f"--out {out}: already holds {' and '.join(earlier)} of an earlier evaluation; "
            "choose another --out, or replace them with --overwrite"
        )


def run_evaluate(args: argparse.Namespace) -> int:
    if args.ckpt is not None and args.enhanced is not None:
        raise UserError("evaluate: give --enhanced DIR or --ckpt CKPT, not both")
    if args.noisy_only is not None and args.no_dnsmos:
        raise UserError(
            "--noisy-only: DNSMOS is the only measure without a clean reference; drop --no-dnsmos"
        )
    _check_out_dir(args.out, args.overwrite)
    if args.pairs is not None:
        items = build_eval_items(args.pairs, args.enhanced)
    else:
        items = build_noisy_only_items(args.noisy_only, args.enhanced)
    start = time.time()
    if args.ckpt is not None:
        items = enhance_items(items, args.ckpt, progress=not args.no_progress)
    seconds = time.time() - start
    result = evaluate_pairs(
        items, workers=args.workers, progress=not args.no_progress, dnsmos=not args.no_dnsmos
    )
    csv_path, json_path = write_results(result, args.out)
    print(summary_table(result.summary))
    print(f"per-file: {csv_path}\nsummary:  {json_path}")
    if args.pairs is not None and (args.ckpt is not None or args.enhanced is not None):
        from common.examples import save_examples

        print(f"examples: {save_examples(_loaded(items), args.out).parent}")
    if args.pairs is not None and args.ckpt is not None:
        # A run folder for `make report RUNS=OUT`: what the checkpoint says about its run.
        print(f"run:      {write_run_summary(args, result.summary, seconds)}")
        print(headline(result.rows))
    return 0


def _loaded(items: list[EvalItem]) -> list[EvalItem]:
    """The chosen listening examples with their signals as arrays, cut to one length."""
    from common.examples import choose_examples

    chosen = set(choose_examples(i.name for i in items))
    out = []
    for it in items:
        if it.name not in chosen or it.enhanced is None:
            continue
        signals = {
            s: w if isinstance(w, np.ndarray) else load_audio(w, SAMPLE_RATE)
            for s, w in (("clean", it.clean), ("noisy", it.noisy), ("enhanced", it.enhanced))
        }
        n = min(len(w) for w in signals.values())
        out.append(EvalItem(it.name, **{k: v[:n] for k, v in signals.items()}))
    return out


def write_run_summary(args: argparse.Namespace, summary: dict, seconds: float) -> Path:
    """summary.json of a CLI evaluation of a checkpoint: what the report reads about the run."""
    import json

    from common.atomic import atomic_write
    from common.checkpoint import json_safe
    from common.evaluation_steps import checkpoint_overview
    from common.experiment import git_commit
    from common.provenance import sha256_file

    o = checkpoint_overview(args.ckpt)
    config = o["config"] if isinstance(o.get("config"), dict) else {}
    run = {
        "model": o["model"],
        "recipe": config.get("recipe"),
        "params": o["params"],
        "gmacs_per_s": o["gmacs_per_s"],
        "config": config,
        "device": None,  # where it trained is not recorded in the checkpoint
        "evaluation_device": "cpu",
        "epochs": o["epoch"],
        "best_epoch": o["best_epoch"],
        "steps": o["step"],
        "stop_reason": "evaluation only",
        "train_seconds": o["train_seconds"],
        "timings": {
            "enhance_seconds": seconds,
            "checkpoint": str(args.ckpt),
            "checkpoint_sha256": sha256_file(Path(args.ckpt)),
        },
        "evaluated_on": str(args.pairs),
        "git_commit": git_commit(),
        "kernel": None,
        "history": o["history"],
        "metrics": summary,
    }
    path = args.out / "summary.json"
    with atomic_write(path) as fh:
        fh.write(json.dumps(json_safe(run), indent=2, allow_nan=False) + "\n")
    return path


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "evaluate", __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--pairs",
        type=path_type,
        metavar="DIR",
        help="folder with noisy/ and clean/ (or test/ and y_test/)",
    )
    source.add_argument(
        "--noisy-only",
        type=path_type,
        metavar="DIR",
        help="folder of recordings without clean references (scored by DNSMOS)",
    )
    parser.add_argument(
        "--enhanced",
        type=path_type,
        metavar="DIR",
        help="folder with enhanced files named like the noisy ones",
    )
    parser.add_argument(
        "--ckpt",
        type=path_type,
        metavar="CKPT",
        help="enhance the noisy files with this checkpoint and score the result (no --enhanced); "
        "with --pairs, OUT becomes a run folder (summary.json, examples/) for `make report RUNS=OUT`",
    )
    parser.add_argument(
        "--no-dnsmos", action="store_true", help="skip DNSMOS (the slowest measure) for --pairs"
    )
    parser.add_argument(
        "--out",
        type=path_type,
        default=DEFAULT_EVAL_OUT,
        metavar="DIR",
        help=f"where eval_per_file.csv and eval_summary.json go (default: {DEFAULT_EVAL_OUT})",
    )
    parser.add_argument(
        "--workers",
        type=whole_arg(1, MAX_WORKERS),
        metavar="N",
        help="worker processes (default: one per available CPU core)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier evaluation"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_evaluate)
