"""`python -m common data ...`: extract the Kaggle archives, make synthetic or mixed test data,
and check a folder of pairs (pairing and alignment)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common.alignment import ALIGNED_CORRELATION, PAIR_MIN_CORRELATION, check_alignment
from common.checks import number_arg, path_arg, seed_arg, whole_arg
from common.cli import add_command
from common.corpus import real_corpus_splits
from common.errors import UserError
from common.fixed_mixtures import make_paired_corpus, make_testset
from common.kaggle_data import prepare_kaggle_data
from common.paired_dataset import PairedDataset
from common.pairs import AudioPair, discover_pairs, find_pair_dirs

MAX_PAIRS = 10**6  # far above any corpus the commands make or check
MAX_SEGMENT_SECONDS = 600.0
MAX_SNR_DB = 100.0


def _describe(label: str, pairs: list[AudioPair]) -> str:
    if not pairs:
        return f"{label}: none"
    return (
        f"{label}: {len(pairs)} pairs (noisy {pairs[0].noisy.parent}, "
        f"clean {pairs[0].clean.parent})"
    )


def _extract(args: argparse.Namespace) -> int:
    data = prepare_kaggle_data(Path(args.root), Path(args.work), need_train=not args.test_only)
    print(_describe("train", data.train))
    print(_describe("test", data.test))
    return 0


def _make_synthetic(args: argparse.Namespace) -> int:
    # Imported here: scipy.signal costs a second at start-up of every `python -m common` command.
    from common.synthetic import make_synthetic_corpus

    out = make_synthetic_corpus(
        Path(args.out), n_train=args.n_train, n_test=args.n_test, seed=args.seed
    )
    print(f"wrote train.7z, y_train.7z, test.7z, y_test.7z and synthetic_manifest.csv to {out}")
    return 0


def _make_testset(args: argparse.Namespace) -> int:
    splits = real_corpus_splits(Path(args.data), args.seed, args.exclude_noncommercial)
    for name, split in splits.items():
        print(f"{name}: {len(split.speech)} speech files, {len(split.noise)} noise files")
    out = make_testset(
        Path(args.data),
        Path(args.out),
        n_items=args.n,
        snrs=tuple(args.snrs),
        seed=args.seed,
        exclude_noncommercial=args.exclude_noncommercial,
    )
    print(f"wrote {args.n} pairs to {out}/noisy and {out}/clean, list in {out}/testset.csv")
    return 0


def _make_pairs(args: argparse.Namespace) -> int:
    if args.snr[0] > args.snr[1]:
        raise UserError(f"--snr {args.snr[0]:g} {args.snr[1]:g}: LOW must not exceed HIGH")
    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise UserError(f"--out {args.out}: folder exists and is not empty; choose a new folder")
    out = make_paired_corpus(
        Path(args.data),
        Path(args.out),
        snr_db=tuple(args.snr),
        seed=args.seed,
        exclude_noncommercial=not args.include_noncommercial,
    )
    for noisy in ("train", "test"):
        print(f"{noisy}: {len(list((out / noisy).glob('*.wav')))} pairs")
    print(f"wrote {out}/train, y_train, test, y_test (the Kaggle layout) and {out}/pairs.csv")
    return 0


def _check(args: argparse.Namespace) -> int:
    noisy_dir, clean_dir = find_pair_dirs(Path(args.pairs))
    pairs = discover_pairs(noisy_dir, clean_dir)
    dataset = PairedDataset(pairs, segment_seconds=args.segment, train=False)
    seconds = np.array(dataset.lengths) / dataset.sr
    print(f"noisy: {noisy_dir}")
    print(f"clean: {clean_dir}")
    print(
        f"pairs: {len(pairs)} found, {len(dataset)} usable; duration min {seconds.min():.2f} s, "
        f"mean {seconds.mean():.2f} s, max {seconds.max():.2f} s"
    )
    n_pairs = args.n_pairs or len(dataset)  # every pair unless told otherwise
    corr = check_alignment(dataset, n_pairs=n_pairs, min_corr=args.min_corr)
    print(
        f"alignment: mean noisy/clean correlation {corr:.3f} (aligned Kaggle data: "
        f"{ALIGNED_CORRELATION}; minimum {args.min_corr}): OK"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `data extract | make-synthetic | make-testset | make-pairs | check`."""
    parser = add_command(sub, "data", __doc__, raw=False)
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "extract",
        help="extract (once) and pair the Kaggle archives",
        description="Find train.7z, y_train.7z, test.7z, y_test.7z (or extracted folders of those "
        "names) under ROOT, extract them into WORK once, and report the pairs.",
    )
    p.add_argument(
        "root", type=path_arg, help="folder holding the archives (e.g. /kaggle/input/<slug>)"
    )
    p.add_argument(
        "--work", type=path_arg, required=True, help="writable folder for the extracted files"
    )
    p.add_argument("--test-only", action="store_true", help="only test.7z and y_test.7z are needed")
    p.set_defaults(func=_extract)

    p = commands.add_parser(
        "make-synthetic",
        help="write a small synthetic corpus in the Kaggle layout",
        description="Write speech-like signals mixed with noise at 5-20 dB as train.7z, "
        "y_train.7z, test.7z, y_test.7z (16-24 s files). For plumbing tests only.",
    )
    p.add_argument("out", type=path_arg, help="output folder")
    p.add_argument(
        "--n-train", type=whole_arg(1, MAX_PAIRS), default=16, help="training pairs (default 16)"
    )
    p.add_argument(
        "--n-test", type=whole_arg(1, MAX_PAIRS), default=6, help="test pairs (default 6)"
    )
    p.add_argument("--seed", type=seed_arg, default=0)
    p.set_defaults(func=_make_synthetic)

    p = commands.add_parser(
        "make-testset",
        help="write a fixed noisy/clean test set mixed from real speech and noise",
        description="Mix whole utterances of the test split (unseen speakers and noise "
        "recordings) at fixed SNRs; writes OUT/noisy, OUT/clean (same names) and testset.csv.",
    )
    p.add_argument(
        "--data", type=path_arg, default="../shared/data", help="folder with speech/ and noise/"
    )
    p.add_argument("--out", type=path_arg, required=True, help="output folder")
    p.add_argument(
        "--n", type=whole_arg(1, MAX_PAIRS), default=48, help="number of pairs (default 48)"
    )
    p.add_argument(
        "--snrs",
        type=number_arg(-MAX_SNR_DB, MAX_SNR_DB),
        nargs="+",
        default=[0.0, 5.0, 10.0, 15.0],
        help="SNRs in dB",
    )
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument(
        "--exclude-noncommercial",
        action="store_true",
        help="leave out ESC-50, the p287 pairs and vcc2016 (licences forbid shipping)",
    )
    p.set_defaults(func=_make_testset)

    p = commands.add_parser(
        "make-pairs",
        help="write a fixed paired corpus from speech and noise, as the public dataset was made",
        description="Mix each utterance of --data once with a noise of its split at an SNR drawn "
        "from --snr; writes OUT/train + OUT/y_train (training speakers) and OUT/test + "
        "OUT/y_test (the test speakers and noises of make-testset), the Kaggle dataset's layout: "
        "train on it as fixed pairs (data.source=kaggle) or remixed (data.source=remix).",
    )
    p.add_argument(
        "--data", type=path_arg, default="../shared/data", help="folder with speech/ and noise/"
    )
    p.add_argument("--out", type=path_arg, required=True, help="output folder (new or empty)")
    p.add_argument(
        "--snr",
        type=number_arg(-MAX_SNR_DB, MAX_SNR_DB),
        nargs=2,
        default=[5.0, 20.0],
        metavar=("LOW", "HIGH"),
    )
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument(
        "--include-noncommercial",
        action="store_true",
        help="also use ESC-50, the p287 pairs and vcc2016 (a model trained so may not ship)",
    )
    p.set_defaults(func=_make_pairs)

    p = commands.add_parser(
        "check",
        help="report the pairing and alignment of a folder of pairs",
        description="Pair PAIRS/noisy with PAIRS/clean (or test/ with y_test/), report the "
        "durations, and measure the noisy/clean correlation of each pair; exits 2 naming each pair "
        "where it is implausibly low (shifted in time, or two different recordings).",
    )
    p.add_argument(
        "--pairs",
        type=path_arg,
        required=True,
        help="folder with noisy/ and clean/ (or test/, y_test/)",
    )
    p.add_argument(
        "--n-pairs",
        type=whole_arg(0, MAX_PAIRS),
        default=0,
        help="pairs checked, spread over the list (default 0: all)",
    )
    p.add_argument(
        "--min-corr",
        type=number_arg(-1.0, 1.0),
        default=PAIR_MIN_CORRELATION,
        help=f"minimum noisy/clean correlation of each pair (default {PAIR_MIN_CORRELATION})",
    )
    p.add_argument(
        "--segment",
        type=number_arg(0.0, MAX_SEGMENT_SECONDS, lo_open=True),
        default=3.0,
        help="seconds compared per pair",
    )
    p.set_defaults(func=_check)
