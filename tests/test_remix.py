"""Remixing a paired dataset: each pair taken apart once, every training example mixed afresh."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run_common, run_python
from scipy.signal import correlate, lfilter

from common.audio import SAMPLE_RATE, load_audio, write_audio
from common.errors import UserError
from common.fixed_mixtures import make_paired_corpus
from common.mixing import MixConfig
from common.pairs import AudioPair
from common.recipes import apply_overrides, load_recipe
from common.remix import (
    LEFT_OUT_REASONS,
    RemixDataset,
    measure_pair,
    measure_pairs,
    pair_group,
    split_by_speaker,
)
from common.run import prepare_data
from common.synthetic import synth_noise, synth_speech

SR = SAMPLE_RATE


def speech(seed: int, seconds: float = 4.0) -> np.ndarray:
    wav = synth_speech(np.random.default_rng(seed), int(seconds * SR))
    return (0.1 * wav / np.sqrt(np.mean(wav**2))).astype(np.float32)


def noise(seed: int, n: int, kind: str = "pink") -> np.ndarray:
    wav = synth_noise(kind, np.random.default_rng(seed), n)
    return (0.03 * wav / np.sqrt(np.mean(wav**2))).astype(np.float32)


def write_pair(root: Path, name: str, noisy: np.ndarray, clean: np.ndarray) -> AudioPair:
    write_audio(root / "noisy" / name, noisy)
    write_audio(root / "clean" / name, clean)
    return AudioPair(name, root / "noisy" / name, root / "clean" / name)


def test_a_pair_is_taken_apart_by_its_least_squares_gain(tmp_path: Path) -> None:
    clean = speech(0)
    stats = measure_pair(write_pair(tmp_path, "a.wav", 0.7 * clean + noise(1, len(clean)), clean))
    assert stats.left_out == ""
    assert stats.gain == pytest.approx(0.7, abs=0.02)  # the scale noisy = g * clean + residual
    assert 5 < stats.residual_snr_db < 15  # 0.7 * 0.1 over 0.03 RMS: about 7 dB
    assert stats.frames == len(clean)


@pytest.mark.parametrize(
    ("reason", "make_noisy"),
    [
        ("misaligned", lambda c, n: np.roll(c, SR // 2) + n),
        ("speech_in_residual", lambda c, n: lfilter([1, 0, 0, 0.6, 0, 0.4], [1], c) + n),
        ("no_noise", lambda c, n: 0.9 * c),
    ],
)
def test_pairs_whose_residual_is_no_noise_are_left_out(tmp_path, reason, make_noisy) -> None:
    clean = speech(2)
    noisy = make_noisy(clean.astype(np.float64), noise(3, len(clean))).astype(np.float32)
    assert measure_pair(write_pair(tmp_path, "p.wav", noisy, clean)).left_out == reason


def test_unreadable_and_short_pairs_are_left_out_with_a_warning(tmp_path: Path) -> None:
    short = speech(4, seconds=0.5)
    assert measure_pair(write_pair(tmp_path, "s.wav", short, short)).left_out == "too_short"
    (tmp_path / "noisy" / "bad.wav").write_bytes(b"not audio")
    write_audio(tmp_path / "clean" / "bad.wav", speech(5))
    bad = AudioPair("bad.wav", tmp_path / "noisy" / "bad.wav", tmp_path / "clean" / "bad.wav")
    with pytest.warns(UserWarning, match="bad.wav"):
        assert measure_pair(bad).left_out == "unreadable"


def test_statistics_are_cached_and_redone_when_a_file_changes(tmp_path: Path) -> None:
    clean = speech(6)
    pairs = [write_pair(tmp_path / "d", "a.wav", clean + noise(7, len(clean)), clean)]
    first = measure_pairs(pairs, cache_dir=tmp_path / "work")
    assert len(list((tmp_path / "work").glob("remix-stats-*.json"))) == 1
    assert measure_pairs(pairs, cache_dir=tmp_path / "work") == first
    write_audio(pairs[0].noisy, 0.5 * clean + noise(8, len(clean)))
    again = measure_pairs(pairs, cache_dir=tmp_path / "work")
    assert again[0].gain != first[0].gain


def remix_set(tmp_path: Path, n: int = 6, length: int = 40) -> RemixDataset:
    pairs = []
    for i in range(n):
        clean = speech(10 + i, seconds=3.0 + i * 0.25)
        pairs.append(write_pair(tmp_path, f"p{i}.wav", clean + noise(20 + i, len(clean)), clean))
    cfg = MixConfig(snr_db=(0.0, 10.0), segment_seconds=1.0, seed=3, babble_prob=0.3)
    return RemixDataset(measure_pairs(pairs), cfg, train=True, length=length)


def test_every_example_is_a_fresh_utterance_plus_another_pairs_residual(tmp_path: Path) -> None:
    data = remix_set(tmp_path)
    pair_of = {p: p.name for p in data.noise} | {p: p.name for p in data.speech}
    for i in range(len(data)):
        item = data.mix_item(i)
        assert item.speech_file.parent.name == "clean"
        assert np.isfinite(item.noisy).all() and item.noisy.shape == (SR,)
        if not item.babble_files:  # the noise: another pair's residual, never its own
            assert item.noise_file.parent.name == "noisy"
            assert pair_of[item.noise_file] != pair_of[item.speech_file]
        # The target is the utterance itself (scaled): the residual carries no speech.
        clean = load_audio(item.speech_file).astype(np.float64)
        target = item.clean.astype(np.float64)
        dots = correlate(clean, target, mode="valid", method="fft")
        cum = np.concatenate([[0.0], np.cumsum(clean**2)])
        energy = np.maximum(cum[SR:] - cum[:-SR], 0.0)  # of every 1 s window
        best = np.max(np.abs(dots) / np.sqrt(energy * np.dot(target, target) + 1e-20))
        assert best > 0.999
    assert any(data.mix_item(i).babble_files for i in range(len(data)))


def test_examples_are_reproducible_and_new_each_epoch(tmp_path: Path) -> None:
    data = remix_set(tmp_path)
    first = [data[i][0] for i in range(4)]
    assert all(torch.equal(a, data[i][0]) for i, a in enumerate(first))
    data.set_epoch(1)
    assert not any(torch.equal(a, data[i][0]) for i, a in enumerate(first))


def test_only_statistics_stay_in_memory(tmp_path: Path) -> None:
    data = remix_set(tmp_path)
    arrays = [k for k, v in vars(data).items() if isinstance(v, np.ndarray | torch.Tensor)]
    assert arrays == []


def test_splits_keep_speakers_apart_where_names_carry_them() -> None:
    names = [f"{spk}-{ch}-{u:04d}.wav" for spk in range(100, 140) for ch in (1, 2) for u in (0, 1)]
    assert pair_group("103-1240-0000.wav") == "libri103" and pair_group("x.wav") == "x.wav"
    split = split_by_speaker(names, 0, (0.1, 0.1))
    speakers = {k: {pair_group(n) for n in v} for k, v in split.items()}
    assert speakers["train"] and speakers["val"] and speakers["test"]
    assert not (speakers["train"] & speakers["val"]) and not (speakers["train"] & speakers["test"])
    assert sorted(sum(split.values(), [])) == sorted(names)


def test_prepare_data_remixes_a_folder_of_pairs_and_counts_what_it_left_out(tmp_path) -> None:
    root = tmp_path / "pairs"
    for spk in range(12):
        clean = speech(100 + spk)
        write_pair(root, f"{spk}-1-0000.wav", clean + noise(200 + spk, len(clean)), clean)
    bad = speech(99)
    write_pair(root, "50-1-0000.wav", np.roll(bad, SR) + noise(98, len(bad)), bad)
    cfg = load_recipe("lite-v2")
    cfg = apply_overrides(cfg, {"data.root": str(root), "data.val_fraction": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = prepare_data(cfg, tmp_path / "work")
    info = data.info
    assert info["remix_left_out"] == {r: int(r == "misaligned") for r in LEFT_OUT_REASONS}
    # A tenth of the speakers (here one) is the test set; the rest is measured.
    assert info["remix_pairs"] + info["test_pairs"] == 13
    assert info["remix_used_pairs"] == info["remix_pairs"] - 1
    assert info["train_pairs"] + info["val_pairs"] == info["remix_used_pairs"]
    assert info["val_pairs"] >= 1
    assert isinstance(data.train, RemixDataset) and len(data.train) == cfg.data.mix_items
    test = {pair_group(p.name) for p in data.test}
    val = {pair_group(p.name) for p in data.val.pairs}
    train = {pair_group(str(p.name)) for p in data.train.speech}
    assert test and not (test & val) and not (test & train) and not (val & train)
    json.dumps(info)  # stored in summary.json as it is


def test_a_dataset_with_no_usable_pair_is_one_error(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    for spk in range(4):
        clean = speech(300 + spk)
        write_pair(root, f"{spk}-1-0000.wav", np.roll(clean, SR), clean)
    cfg = apply_overrides(load_recipe("lite-v2"), {"data.root": str(root)})
    with pytest.raises(UserError, match=r"every one of \d pairs was left out .*misaligned"):
        prepare_data(cfg, tmp_path / "work")


def test_remix_refuses_a_folder_that_is_not_paired(tmp_path: Path) -> None:
    (tmp_path / "speech").mkdir()
    (tmp_path / "noise").mkdir()
    cfg = apply_overrides(
        load_recipe("lite-v2"), {"data.root": str(tmp_path), "data.source": "remix"}
    )
    with pytest.raises(UserError, match="needs a paired dataset"):
        prepare_data(cfg, tmp_path / "work")


def fake_corpus(root: Path) -> Path:
    """speech/ (12 LibriSpeech-named speakers) and noise/ (6 recordings), as ../shared/data."""
    for spk in range(12):
        write_audio(root / "speech" / "libri" / f"{spk + 10}-1-0000.flac", speech(400 + spk))
    for i in range(6):
        write_audio(root / "noise" / "n" / f"n{i}.flac", noise(500 + i, 5 * SR, "babble"))
    return root


def make_pairs(data_root: Path, out: Path) -> subprocess.CompletedProcess:
    return run_common("data", "make-pairs", "--data", str(data_root), "--out", str(out))


def test_make_pairs_writes_the_kaggle_layout_that_both_paired_sources_read(tmp_path) -> None:
    data_root = fake_corpus(tmp_path / "data")
    out = tmp_path / "corpus"
    proc = make_pairs(data_root, out)
    assert proc.returncode == 0, proc.stderr
    for folder in ("train", "y_train", "test", "y_test"):
        assert list((out / folder).glob("*.wav")), folder
    train = {p.name for p in (out / "train").glob("*.wav")}
    test = {p.name for p in (out / "test").glob("*.wav")}
    assert train and test and not {pair_group(n) for n in train} & {pair_group(n) for n in test}
    assert len(train) + len(test) == 12  # every utterance once
    for source in ("kaggle", "remix"):
        cfg = apply_overrides(
            load_recipe("lite-v2"),
            {"data.root": str(out), "data.source": source, "data.val_fraction": 0.2},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = prepare_data(cfg, tmp_path / f"work-{source}")
        assert {p.name for p in data.test} == test  # the corpus's own test pairs
    again = make_pairs(data_root, out)  # never into a corpus that is there
    assert again.returncode == 2 and again.stderr.startswith("error: --out")


def test_make_paired_corpus_is_the_same_for_the_same_inputs(tmp_path: Path) -> None:
    data_root = fake_corpus(tmp_path / "data")
    a = make_paired_corpus(data_root, tmp_path / "a")
    b = make_paired_corpus(data_root, tmp_path / "b")
    assert (a / "pairs.csv").read_text() == (b / "pairs.csv").read_text()
    for f in (a / "train").glob("*.wav"):
        assert f.read_bytes() == (b / "train" / f.name).read_bytes()


@pytest.mark.parametrize("name", ["crn", "transformer", "dpt", "lite"])
def test_make_smoke_remixes_the_synthetic_pairs_and_reports_the_counts(name: str) -> None:
    from builders.smoke import SMOKE_DIR

    out = REPO / SMOKE_DIR / name
    executed = out / f"{name}.ipynb"
    if not (out / "summary.json").is_file():
        pytest.skip(f"no {executed.relative_to(REPO)}: run `make smoke` first")
    data = json.loads((out / "summary.json").read_text())["data"]
    assert data["noise"].startswith("residuals") and data["remix_used_pairs"] > 0
    assert set(data["remix_left_out"]) == set(LEFT_OUT_REASONS)
    used, left = data["remix_used_pairs"], sum(data["remix_left_out"].values())
    assert used + left == data["remix_pairs"]
    printed = f"remix: {data['remix_pairs']} pairs measured, {used} used"
    assert printed in executed.read_text(), f"{executed}: the counts are not shown"


def test_on_kaggle_your_uploaded_speech_and_noise_win_even_if_left_zipped(tmp_path, monkeypatch):
    import shutil

    import common.kaggle_paths

    data_root = fake_corpus(tmp_path / "data")
    mount = tmp_path / "input" / "datasets" / "you" / "lse-speech-noise"
    mount.mkdir(parents=True)
    for name in ("speech", "noise"):  # as `make upload-data` uploads them (`kaggle ... -r zip`)
        shutil.make_archive(str(mount / name), "zip", data_root / name)
    monkeypatch.setattr(common.kaggle_paths, "KAGGLE_INPUT", tmp_path / "input")
    monkeypatch.setenv("SHARED_DATA", str(tmp_path / "absent"))
    cfg = apply_overrides(load_recipe("lite-v2"), {"data.exclude_noncommercial": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = prepare_data(cfg, tmp_path / "work")
    assert data.info["noise"] == "noise recordings"
    assert Path(data.info["root"]) == tmp_path / "work" / "own-data"


def test_the_loader_benchmark_prints_every_source_against_the_gpu(tmp_path: Path) -> None:
    data_root = fake_corpus(tmp_path / "data")
    proc = run_python(
        "-m", "scripts.bench_loader", "--data", str(data_root), "--pairs", str(tmp_path / "pairs"),
        "--items", "5", "--segment", "1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| ") and "source" not in ln]
    assert [r.split(" | ")[0] for r in rows] == ["| remix (paired corpus, residual noise)",
                                                  "| mix (speech + noise folders)",
                                                  "| fixed pairs (PairedDataset)"]  # fmt: skip
    for row in rows:
        rate = float(row.split(" | ")[1])
        assert rate > 0


def test_one_prolific_speaker_never_takes_more_than_the_validation_share() -> None:
    # A single-reader corpus (LJ Speech: one speaker, hundreds of utterances) beside many
    # speakers with a few each: the share is counted in pairs, not in speakers.
    names = [f"LJ001-{i:04d}.wav" for i in range(200)]
    names += [f"{spk}-1-{u:04d}.wav" for spk in range(100, 200) for u in range(4)]
    for seed in range(5):
        split = split_by_speaker(names, seed, (0.05, 0.0))
        assert 0 < len(split["val"]) <= 0.05 * len(names)
        assert not split["test"] and "ljspeech" not in {pair_group(n) for n in split["val"]}
        assert len(split["train"]) + len(split["val"]) == len(names)
