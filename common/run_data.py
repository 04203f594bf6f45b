"""A run's data: `prepare_data` turns `RunConfig.data` into training and validation sets (with the
alignment guard for paired data) and the test pairs the evaluation scores.

    data = prepare_data(cfg, work_dir)      # one data path for every source

The sources: the team's Kaggle dataset (archives extracted once under `work`), a synthetic
corpus in its layout, clean speech + noise mixed on the fly (held-out test mixtures written once
from the test split), or a paired dataset remixed (`common.remix`). How the sets are read in
batches, split over processes and resumed mid-epoch is `common.loaders`.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from common.alignment import check_alignment
from common.config import RunConfig
from common.corpus import real_corpus_splits
from common.errors import UserError
from common.fixed_mixtures import make_testset
from common.kaggle_data import find_kaggle_items, prepare_kaggle_data
from common.kaggle_paths import has_kaggle_input, kaggle_input_files
from common.mixing import MixConfig, MixingDataset
from common.paired_dataset import PairedDataset
from common.pairs import AudioPair, discover_pairs, find_pair_dirs, split_pairs, validation_count
from common.remix import RemixDataset, left_out_counts, measure_pairs, split_by_speaker

KAGGLE_DATASET_SLUG = "libri-speech-noise-dataset"
SYNTHETIC_MIN_PAIRS = 16  # training pairs in the synthetic corpus (more for a larger batch)
MIX_TEST_ITEMS = 48  # held-out mixtures scored after a `mix` run
MIX_TEST_SNRS = (0.0, 5.0, 10.0, 15.0)
REMIX_TEST_FRACTION = 0.1  # of a folder of pairs without a test split of its own


@dataclass
class RunData:
    """What a run trains on, validates on and is scored on."""

    train: Dataset | None
    val: Dataset | None
    test: list[AudioPair]
    info: dict[str, Any] = field(default_factory=dict)


def _limit(pairs: list[AudioPair], n: int) -> list[AudioPair]:
    return pairs[:n] if n and n > 0 else pairs


def _kaggle_dataset_root(root: str) -> Path:
    if root != "auto":
        path = Path(root)
        if not path.is_dir():
            raise UserError(f"data.root={root!r}: folder not found; give the Kaggle dataset root")
        return path
    # The mount layout has changed over time: search for the archive instead of assuming a path.
    found = [p.parent for p in kaggle_input_files("test.7z")]
    found += kaggle_input_files(f"*{KAGGLE_DATASET_SLUG}*", recursive=False)
    if not found:
        raise UserError(
            "data.source='kaggle' but no test.7z under /kaggle/input: attach the dataset "
            f"earth16/{KAGGLE_DATASET_SLUG}, or set data.root to the dataset folder"
        )
    return found[0]


def _is_speech_noise(path: Path) -> bool:
    return (path / "speech").is_dir() and (path / "noise").is_dir()


def is_paired_root(path: Path) -> bool:
    """A paired dataset: the Kaggle layout (train/y_train archives or folders) or noisy/ + clean/."""
    if not path.is_dir():
        return False
    if {"train", "y_train"} <= set(find_kaggle_items(path)):
        return True
    try:
        find_pair_dirs(path)
    except UserError:
        return False
    return True


def _unzipped(folder: Path, work: Path) -> Path:
    """`folder`'s speech.zip and noise.zip extracted (once) under `work`: `make upload-data`
    uploads the two folders as zips, which Kaggle is documented to unpack; if it has not, this
    does."""
    out = work / "own-data"
    if not (out / ".unzipped").is_file():
        for name in ("speech", "noise"):
            archive = folder / f"{name}.zip"
            if not archive.is_file():
                return folder
            with zipfile.ZipFile(archive) as z:
                z.extractall(out / name)
        (out / ".unzipped").write_text("speech.zip noise.zip\n")
    return out


def _mix_root(root: str, source: str, work: Path) -> Path:
    """What a mixing run draws from: a folder with speech/ and noise/ (`root`, else $SHARED_DATA,
    ../shared/data or an attached dataset with them), else a paired dataset whose residuals
    become the noise (`root`, else the team's public dataset under /kaggle/input).
    `source = "remix"` takes a paired dataset only."""
    if root != "auto":
        path = Path(root)
        if source == "mix" and _is_speech_noise(path) or is_paired_root(path):
            return path
        wanted = (
            "a paired dataset" if source == "remix" else "speech/ and noise/, or a paired dataset"
        )
        raise UserError(
            f"data.root={root!r}: needs {wanted} (train.7z + y_train.7z as on Kaggle, or noisy/ + "
            "clean/); check the folder"
        )
    if source == "mix":
        candidates = [Path(os.environ.get("SHARED_DATA", "../shared/data"))]
        candidates += [p.parent for p in kaggle_input_files("speech") if p.is_dir()]
        candidates += [_unzipped(p.parent, work) for p in kaggle_input_files("speech.zip")]
        for path in candidates:
            if _is_speech_noise(path):
                return path
    if has_kaggle_input():
        return _kaggle_dataset_root("auto")
    raise UserError(
        f"data.source={source!r} needs speech/ and noise/ folders or a paired dataset "
        "(data.root='auto'): set data.root, or $SHARED_DATA, or attach a dataset on Kaggle"
    )


def synthetic_train_pairs(batch_size: int, val_fraction: float) -> int:
    """The synthetic corpus's size: 16 pairs, or more when the training split (what
    `val_fraction` leaves) would hold less than one batch."""
    n = SYNTHETIC_MIN_PAIRS
    while n - validation_count(n, val_fraction) < batch_size:
        n += 1
    return n


def _paired_data(cfg: RunConfig, root: Path, work: Path, need_train: bool) -> RunData:
    d, seed = cfg.data, cfg.train.seed
    if (root / "noisy").is_dir() and (root / "clean").is_dir():  # extracted test pairs only
        if need_train:
            raise UserError(
                f"{root}: holds only noisy/ + clean/ test pairs; training needs the archives"
            )
        train_all, test = [], discover_pairs(*find_pair_dirs(root))
    else:
        kaggle = prepare_kaggle_data(root, work / "extracted", need_train=need_train)
        train_all, test = kaggle.train, kaggle.test
    train_all = _limit(train_all, d.max_train_pairs)
    test = _limit(sorted(test, key=lambda p: p.name), d.max_test_pairs)
    train_pairs, val_pairs = split_pairs(train_all, d.val_fraction, seed) if train_all else ([], [])
    info: dict[str, Any] = {"source": d.source, "root": str(root), "test_pairs": len(test)}
    if not need_train:
        corr = check_alignment(PairedDataset(test, d.segment_seconds, train=False, seed=seed))
        print(
            f"alignment check: mean noisy/clean correlation {corr:.3f} over the test pairs (passed)"
        )
        info["alignment_corr"] = round(corr, 4)
        return RunData(None, None, test, info)
    train_set = PairedDataset(train_pairs, d.segment_seconds, train=True, seed=seed)
    val_set = (
        PairedDataset(val_pairs, d.segment_seconds, train=False, seed=seed) if val_pairs else None
    )
    corr = check_alignment(train_set)  # the guard against the team's misaligned-crop bug
    print(
        f"alignment check: mean noisy/clean correlation {corr:.3f} over the training crops (passed)"
    )
    info.update(
        train_pairs=len(train_pairs), val_pairs=len(val_pairs), alignment_corr=round(corr, 4)
    )
    return RunData(train_set, val_set, test, info)


def _mix_config(cfg: RunConfig) -> MixConfig:
    d = cfg.data
    return MixConfig(
        snr_db=tuple(d.snr_db),
        segment_seconds=d.segment_seconds,
        seed=cfg.train.seed,
        babble_prob=d.babble_prob,
        augment_prob=d.augment_prob,
    )


def _mix_data(cfg: RunConfig, work: Path, need_train: bool) -> RunData:
    """Speech + noise mixed on the fly; from a paired dataset, its pairs remixed."""
    d, seed = cfg.data, cfg.train.seed
    root = _mix_root(d.root, d.source, work)
    if d.source == "remix" or not _is_speech_noise(root):
        return _remix_data(cfg, root, work, need_train)
    # Named by what decides its content, so a work folder shared by runs never serves one run's
    # test set to another; written once, whole (testset.csv comes last).
    keep = "commercial" if d.exclude_noncommercial else "all"
    testset = work / f"mix-testset-{MIX_TEST_ITEMS}-seed{seed}-{keep}"
    if not (testset / "testset.csv").is_file():
        make_testset(root, testset, MIX_TEST_ITEMS, MIX_TEST_SNRS, seed, d.exclude_noncommercial)
    test = _limit(discover_pairs(testset / "noisy", testset / "clean"), d.max_test_pairs)
    info: dict[str, Any] = {"source": d.source, "root": str(root), "test_pairs": len(test)}
    if not need_train:
        return RunData(None, None, test, info)
    splits = real_corpus_splits(root, seed=seed, exclude_noncommercial=d.exclude_noncommercial)
    mix = _mix_config(cfg)
    train_set = MixingDataset(splits["train"].speech, splits["train"].noise, mix, True, d.mix_items)
    n_val = max(cfg.train.batch_size, d.mix_items // 20)
    val_set = MixingDataset(splits["val"].speech, splits["val"].noise, mix, False, n_val)
    info.update(
        noise="noise recordings",
        train_speech_files=len(splits["train"].speech),
        train_noise_files=len(splits["train"].noise),
        items_per_epoch=len(train_set),
        snr_db=list(d.snr_db),
        exclude_noncommercial=bool(d.exclude_noncommercial),
        val_items=len(val_set),
    )
    return RunData(train_set, val_set, test, info)


def _remix_pools(cfg: RunConfig, root: Path, work: Path, need_train: bool):
    """(training pool, test pairs) of a paired dataset: the Kaggle layout keeps its own test
    pairs (the public dataset's 105, comparable with the team's numbers); a folder of pairs
    gives a tenth of its speakers (or files) to the test set."""
    seed = cfg.train.seed
    if {"train", "y_train"} <= set(find_kaggle_items(root)):
        kaggle = prepare_kaggle_data(root, work / "extracted", need_train=need_train)
        return kaggle.train, kaggle.test
    pairs = {p.name: p for p in discover_pairs(*find_pair_dirs(root))}
    split = split_by_speaker(list(pairs), seed, (0.0, REMIX_TEST_FRACTION))
    return [pairs[n] for n in split["train"] + split["val"]], [pairs[n] for n in split["test"]]


def _remix_data(cfg: RunConfig, root: Path, work: Path, need_train: bool) -> RunData:
    d, seed = cfg.data, cfg.train.seed
    pool, test = _remix_pools(cfg, root, work, need_train)
    test = _limit(sorted(test, key=lambda p: p.name), d.max_test_pairs)
    info: dict[str, Any] = {"source": d.source, "root": str(root), "test_pairs": len(test)}
    if not need_train:
        return RunData(None, None, test, info)
    pool = _limit(sorted(pool, key=lambda p: p.name), d.max_train_pairs)
    stats = measure_pairs(pool, cache_dir=work)
    left_out = left_out_counts(stats)
    used = [s for s in stats if not s.left_out]
    if not used:
        raise UserError(
            f"{root}: every one of {len(stats)} pairs was left out of remixing ("
            + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in left_out.items() if n)
            + "); check that noisy and clean files are aligned recordings of the same speech"
        )
    # Validation: whole speakers (or pairs) held out, as fixed middle crops of the real pairs.
    by_name = {s.name: s for s in used}
    split = split_by_speaker(list(by_name), seed, (d.val_fraction, 0.0))
    train_stats = [by_name[n] for n in split["train"] + split["test"]]
    val_stats = [by_name[n] for n in split["val"]]
    train_set = RemixDataset(train_stats, _mix_config(cfg), True, d.mix_items)
    val_pairs = [AudioPair(s.name, Path(s.noisy), Path(s.clean)) for s in val_stats]
    val_set = (
        PairedDataset(val_pairs, d.segment_seconds, train=False, seed=seed) if val_pairs else None
    )
    n_left = sum(left_out.values())
    print(
        f"remix: {len(stats)} pairs measured, {len(used)} used ({len(train_stats)} for training, "
        f"{len(val_stats)} for validation), {n_left} left out: "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in left_out.items())
    )
    if n_left > 0.2 * len(stats):
        warnings.warn(
            f"{root}: {n_left} of {len(stats)} pairs left out of remixing; check the data",
            stacklevel=2,
        )
    info.update(
        noise="residuals of other pairs (remix)",
        remix_pairs=len(stats),
        remix_used_pairs=len(used),
        remix_left_out=left_out,
        train_pairs=len(train_stats),
        val_pairs=len(val_stats),
        items_per_epoch=len(train_set),
        snr_db=list(d.snr_db),
        babble_prob=d.babble_prob,
    )
    return RunData(train_set, val_set, test, info)


def prepare_data(cfg: RunConfig, work: Path, need_train: bool = True) -> RunData:
    """The datasets `cfg.data` names; archives are extracted (once) under `work`."""
    source = cfg.data.source
    if source in ("mix", "remix"):
        data = _mix_data(cfg, work, need_train)
    elif source == "synthetic":
        from common.synthetic import make_synthetic_corpus

        n_train = synthetic_train_pairs(cfg.train.batch_size, cfg.data.val_fraction)
        root = make_synthetic_corpus(work / "synthetic", n_train=n_train, seed=cfg.train.seed)
        data = _paired_data(cfg, root, work, need_train)
    else:
        data = _paired_data(cfg, _kaggle_dataset_root(cfg.data.root), work, need_train)
    counts = ", ".join(
        f"{v} {k.replace('_', ' ')}"
        for k, v in data.info.items()
        if k.endswith(("_pairs", "_items"))
    )
    print(f"data: {source} ({data.info['root']}): {counts}")
    return data
