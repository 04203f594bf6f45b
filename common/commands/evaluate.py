"""`python -m common evaluate`: PESQ-wb, STOI, ESTOI and SI-SDR of a folder of pairs.

    python -m common evaluate --pairs DIR [--enhanced DIR] [--out DIR] [--workers N]

DIR holds noisy/ + clean/ (or Kaggle's test/ + y_test/). Without --enhanced the noisy files are
scored against the clean ones (the baseline); with it, the enhanced files (same names; .wav and
.flac match each other) are scored too and the delta is reported. A pair whose files do not line
up (shifted in time, or two different recordings) is named in a warning and in the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.audio import list_audio
from common.data import audio_root, discover_pairs, find_pair_dirs
from common.errors import UserError
from common.metrics import EvalItem, evaluate_pairs, summary_table, write_results

DEFAULT_EVAL_OUT = Path("results") / "evaluate"


def _stem_key(relative: str | Path) -> str:
    # Same pairing rule as common.data: relative path without the suffix.
    return Path(relative).with_suffix("").as_posix()


def _enhanced_by_key(enhanced_dir: Path) -> dict[str, Path]:
    if not enhanced_dir.is_dir():
        raise UserError(f"--enhanced {enhanced_dir}: folder not found; check the path")
    root = audio_root(enhanced_dir)
    files = list_audio(root)
    if not files:
        raise UserError(f"--enhanced {enhanced_dir}: no .wav/.flac files; check the path")
    return {_stem_key(p.relative_to(root)): p for p in files}


def build_eval_items(pairs_dir: Path, enhanced_dir: Path | None) -> list[EvalItem]:
    """One EvalItem per pair; every pair must have an enhanced file when `enhanced_dir` is given."""
    pairs = discover_pairs(*find_pair_dirs(pairs_dir))
    if enhanced_dir is None:
        return [EvalItem(p.name, clean=p.clean, noisy=p.noisy) for p in pairs]
    enhanced = _enhanced_by_key(enhanced_dir)
    missing = [p.name for p in pairs if _stem_key(p.name) not in enhanced]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise UserError(
            f"--enhanced {enhanced_dir}: {len(missing)} of {len(pairs)} files missing ({shown}); "
            "enhance every noisy file or point --enhanced at the right folder"
        )
    return [
        EvalItem(p.name, clean=p.clean, noisy=p.noisy, enhanced=enhanced[_stem_key(p.name)])
        for p in pairs
    ]


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
    _check_out_dir(args.out, args.overwrite)
    items = build_eval_items(args.pairs, args.enhanced)
    result = evaluate_pairs(items, workers=args.workers, progress=not args.no_progress)
    csv_path, json_path = write_results(result, args.out)
    print(summary_table(result.summary))
    print(f"per-file: {csv_path}\nsummary:  {json_path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="PESQ/STOI/ESTOI/SI-SDR of noisy (and enhanced) files against clean ones",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--pairs",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder with noisy/ and clean/ (or test/ and y_test/)",
    )
    parser.add_argument(
        "--enhanced",
        type=Path,
        metavar="DIR",
        help="folder with enhanced files named like the noisy ones",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_EVAL_OUT,
        metavar="DIR",
        help=f"where eval_per_file.csv and eval_summary.json go (default: {DEFAULT_EVAL_OUT})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes (default: one per available CPU core)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier evaluation"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_evaluate)
