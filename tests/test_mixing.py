"""On-the-fly mixing, leak-free corpus splits and the fixed test set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from common.corpus import is_noncommercial, read_manifest, real_corpus_splits, speaker_of
from common.errors import UserError
from common.fixed_mixtures import make_testset
from common.mixing import MixConfig, MixingDataset, mix_at_snr
from common.pairs import discover_pairs

SR = 16000


def write_wav(path: Path, wav: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wav, dtype=np.float32), SR, subtype="FLOAT")
    return path


def measured_snr(noisy: np.ndarray, clean: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.sum(clean**2) / np.sum(noise**2)))


@pytest.fixture
def corpus(tmp_path) -> Path:
    """speech/<corpus>/<speaker>/ (8 speakers x 2 files) and noise/ (6 recordings)."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    for s in range(8):
        for u in range(2):
            wav = 0.2 * np.sin(2 * np.pi * (120 + 20 * s) * t) * (0.5 + 0.5 * np.sin(3 * t + u))
            write_wav(tmp_path / "speech" / "corpusA" / f"spk{s}" / f"utt{u}.wav", wav)
    for k in range(6):
        write_wav(tmp_path / "noise" / f"n{k}.wav", 0.05 * rng.standard_normal(3 * SR))
    return tmp_path


# ---------------------------------------------------------------- mixing


def test_mixture_snr_matches_the_drawn_value_and_never_clips(corpus):
    splits = real_corpus_splits(corpus)
    dataset = MixingDataset(splits["train"].speech, splits["train"].noise, MixConfig(), length=12)
    for i in range(len(dataset)):
        item = dataset.mix_item(i)
        assert 5.0 <= item.snr_db <= 20.0
        assert measured_snr(item.noisy, item.clean) == pytest.approx(item.snr_db, abs=0.01)
        assert np.abs(item.noisy).max() <= 0.99 + 1e-6


def test_loud_mixture_is_scaled_not_clipped():
    rng = np.random.default_rng(1)
    clean, noise = rng.standard_normal(SR), rng.standard_normal(SR)
    noisy, scaled_clean, gain = mix_at_snr(clean, noise, snr_db=0.0, level_db=-1.0)
    assert np.abs(noisy).max() == pytest.approx(0.99, abs=1e-6)
    assert measured_snr(noisy, scaled_clean) == pytest.approx(0.0, abs=0.01)
    quiet, _, _ = mix_at_snr(clean, noise, snr_db=0.0, level_db=-40.0)
    assert 20 * np.log10(np.sqrt(np.mean(quiet.astype(np.float64) ** 2))) == pytest.approx(
        -40, abs=0.01
    )


def test_items_reproducible_and_new_each_training_epoch(corpus):
    speech = sorted((corpus / "speech").rglob("*.wav"))
    noise = sorted((corpus / "noise").rglob("*.wav"))
    cfg = MixConfig(seed=3)
    a, b = MixingDataset(speech, noise, cfg, length=4), MixingDataset(speech, noise, cfg, length=4)
    np.testing.assert_array_equal(a[2][0].numpy(), b[2][0].numpy())
    before = a[2][0].numpy().copy()
    a.set_epoch(1)
    assert not np.array_equal(a[2][0].numpy(), before)
    evaluation = MixingDataset(speech, noise, cfg, train=False, length=4)
    first = evaluation[1][0].numpy().copy()
    evaluation.set_epoch(4)
    np.testing.assert_array_equal(evaluation[1][0].numpy(), first)


def test_babble_is_other_talkers_of_the_split_and_only_in_training(corpus):
    split = real_corpus_splits(corpus)["train"]
    cfg = MixConfig(seed=1, babble_prob=0.5, babble_talkers=(3, 4))
    dataset = MixingDataset(split.speech, split.noise, cfg, length=40)
    items = [dataset.mix_item(i) for i in range(40)]
    babble = [it for it in items if it.babble_files]
    assert 8 <= len(babble) <= 32  # about half
    for it in babble:
        assert 3 <= len(it.babble_files) <= 4 and set(it.babble_files) <= set(split.speech)
        assert measured_snr(it.noisy, it.clean) == pytest.approx(it.snr_db, abs=0.01)
    again = MixingDataset(split.speech, split.noise, cfg, length=40)
    np.testing.assert_array_equal(again.mix_item(7).noisy, items[7].noisy)
    # Validation and test mixtures never get babble.
    evaluation = MixingDataset(split.speech, split.noise, cfg, train=False, length=20)
    assert not any(evaluation.mix_item(i).babble_files for i in range(20))
    with pytest.raises(UserError, match="babble_prob=1.5"):
        MixConfig(babble_prob=1.5)


def test_short_speech_is_padded_and_short_noise_looped(tmp_path):
    t = np.arange(SR // 2) / SR
    speech = write_wav(tmp_path / "s.wav", 0.3 * np.sin(2 * np.pi * 200 * t))
    noise = write_wav(tmp_path / "n.wav", 0.1 * np.random.default_rng(0).standard_normal(SR // 4))
    dataset = MixingDataset([speech], [noise], MixConfig(segment_seconds=1.0), length=2)
    item = dataset.mix_item(0)
    assert item.clean.shape == (SR,)
    assert not item.clean[SR // 2 :].any()  # speech padded with silence
    residual = item.noisy.astype(np.float64) - item.clean
    # Looped noise covers the whole segment, period = the noise file's length.
    assert np.abs(residual[-4000:]).max() > 0  # no silent tail where the noise file ended
    np.testing.assert_allclose(residual[: SR // 4], residual[SR // 4 : SR // 2], atol=1e-6)


def test_silent_files_are_skipped_with_a_warning(tmp_path):
    silent = write_wav(tmp_path / "speech" / "silent.wav", np.zeros(2 * SR))
    t = np.arange(2 * SR) / SR
    good = write_wav(tmp_path / "speech" / "good.wav", 0.3 * np.sin(2 * np.pi * 200 * t))
    noise = write_wav(
        tmp_path / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(2 * SR)
    )
    dataset = MixingDataset([silent, good], [noise], MixConfig(segment_seconds=1.0), length=8)
    with pytest.warns(UserWarning, match="silent.wav: silent"):
        files = {dataset.mix_item(i).speech_file for i in range(8)}
    assert files == {good}


def test_no_readable_files_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk")
    with pytest.warns(UserWarning, match="bad.wav"), pytest.raises(UserError) as exc:
        MixingDataset([bad], [bad], MixConfig())
    assert "\n" not in str(exc.value)


def test_bad_config_is_refused():
    with pytest.raises(UserError, match="snr_db"):
        MixConfig(snr_db=(20.0, 5.0))
    with pytest.raises(UserError, match="level_db"):
        MixConfig(level_db=(-10.0, 6.0))


# ---------------------------------------------------------------- splits


def assert_disjoint(splits) -> None:
    for kind in ("speech", "noise"):
        seen: dict[Path, str] = {}
        for name, split in splits.items():
            for path in getattr(split, kind):
                assert path not in seen, f"{path} in {seen[path]} and {name}"
                seen[path] = name


def test_splits_are_by_speaker_deterministic_and_disjoint(corpus):
    splits = real_corpus_splits(corpus, seed=0)
    assert_disjoint(splits)
    assert all(s.speech and s.noise for s in splits.values())
    speakers = {name: {p.parent.name for p in s.speech} for name, s in splits.items()}
    assert not speakers["train"] & speakers["test"] and not speakers["val"] & speakers["test"]
    assert not speakers["train"] & speakers["val"]
    assert real_corpus_splits(corpus, seed=0) == splits
    assert real_corpus_splits(corpus, seed=1) != splits


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="speech"):
        real_corpus_splits(tmp_path)


def test_speaker_from_path_agrees_with_manifest(shared_data):
    manifest = read_manifest(shared_data)
    checked = 0
    for rel, row in manifest.items():
        if row["kind"] == "speech" and "| speaker " in row["license_note"]:
            assert speaker_of(rel, None) == speaker_of(rel, row), rel
            checked += 1
    assert checked > 500


def test_real_corpus_splits_share_no_speaker_or_recording(shared_data):
    splits = real_corpus_splits(shared_data)
    assert_disjoint(splits)
    manifest = read_manifest(shared_data)
    by_split = {
        name: {
            speaker_of(
                p.relative_to(shared_data).as_posix(),
                manifest.get(p.relative_to(shared_data).as_posix()),
            )
            for p in s.speech
        }
        for name, s in splits.items()
    }
    assert not by_split["train"] & by_split["test"] and not by_split["train"] & by_split["val"]
    assert not by_split["val"] & by_split["test"]
    assert len(splits["test"].speech) >= 10 and len(splits["test"].noise) >= 5


def test_exclude_noncommercial_drops_the_restricted_files(shared_data):
    kept = real_corpus_splits(shared_data, exclude_noncommercial=True)
    every = real_corpus_splits(shared_data)
    paths = [
        p.relative_to(shared_data).as_posix() for s in kept.values() for p in s.speech + s.noise
    ]
    assert not any(p.startswith(("noise/esc50/", "speech/vcc2016/")) for p in paths)
    assert (
        sum(len(s.speech) for s in every.values()) - sum(len(s.speech) for s in kept.values())
        == 140
    )
    assert is_noncommercial("noise/esc50/1-100032-A-0.flac")
    assert not is_noncommercial(
        "speech/ljspeech/LJ001-0001.flac", {"license_note": "public domain"}
    )


# ---------------------------------------------------------------- the fixed test set


def test_make_testset_writes_paired_folders_at_the_listed_snrs(corpus, tmp_path):
    out = make_testset(corpus, tmp_path / "testset", n_items=8, seed=0)
    pairs = discover_pairs(out / "noisy", out / "clean")
    assert len(pairs) == 8
    with open(out / "testset.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert [float(rows[p.name]["snr_db"]) for p in pairs] == [0, 5, 10, 15] * 2
    test_speech = {
        p.relative_to(corpus).as_posix() for p in real_corpus_splits(corpus)["test"].speech
    }
    for pair in pairs:
        noisy, _ = sf.read(str(pair.noisy))
        clean, _ = sf.read(str(pair.clean))
        assert len(noisy) == len(clean)
        # 16-bit files: the SNR survives quantisation to well within 0.1 dB.
        assert measured_snr(noisy, clean) == pytest.approx(
            float(rows[pair.name]["snr_db"]), abs=0.1
        )
        assert rows[pair.name]["speech_file"] in test_speech
    again = make_testset(corpus, tmp_path / "again", n_items=8, seed=0)
    assert (again / "testset.csv").read_text() == (out / "testset.csv").read_text()
