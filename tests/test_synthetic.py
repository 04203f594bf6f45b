"""The synthetic corpus goes through the same extraction and pairing as the Kaggle data."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from common.alignment import check_alignment
from common.errors import UserError
from common.kaggle_data import prepare_kaggle_data
from common.paired_dataset import PairedDataset
from common.synthetic import (
    SYNTHETIC_NOISE_TYPES,
    SyntheticConfig,
    make_synthetic_corpus,
    synth_noise,
    synth_speech,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_corpus(out, n_train=3, n_test=2, seed=0)
    return out


def test_writes_the_four_kaggle_archives(corpus):
    names = sorted(p.name for p in corpus.glob("*.7z"))
    assert names == ["test.7z", "train.7z", "y_test.7z", "y_train.7z"]


def test_extracts_and_pairs_with_kaggle_durations_and_snrs(corpus, tmp_path):
    data = prepare_kaggle_data(corpus, tmp_path / "work")
    assert len(data.train) == 3 and len(data.test) == 2
    with open(corpus / "synthetic_manifest.csv", newline="") as f:
        manifest = {r["name"]: r for r in csv.DictReader(f)}
    for pair in data.train + data.test:
        noisy, sr = sf.read(str(pair.noisy))
        clean, _ = sf.read(str(pair.clean))
        assert sr == 16000 and len(noisy) == len(clean)
        assert 16.0 <= len(clean) / sr <= 24.0
        snr = 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))
        assert snr == pytest.approx(float(manifest[pair.name]["snr_db"]), abs=0.1)
        assert np.abs(noisy).max() < 1.0
    assert check_alignment(PairedDataset(data.train, segment_seconds=3.0)) > 0.5


def test_same_seed_same_files(corpus, tmp_path):
    # Files are drawn in order, so a smaller corpus with the same seed starts identically.
    make_synthetic_corpus(tmp_path, n_train=1, n_test=1, seed=0)
    first = (tmp_path / "synthetic_manifest.csv").read_text().splitlines()[:2]
    assert first == (corpus / "synthetic_manifest.csv").read_text().splitlines()[:2]


def test_speech_has_pauses_and_every_noise_type_works():
    rng = np.random.default_rng(0)
    speech = synth_speech(rng, 5 * 16000)
    frames = speech[: len(speech) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    # Speech-like: loud syllables and near-silent gaps, not a stationary signal.
    assert (energy < 0.01 * energy.max()).mean() > 0.1 and (energy > 0.3 * energy.max()).any()
    for kind in SYNTHETIC_NOISE_TYPES:
        noise = synth_noise(kind, rng, 16000)
        assert noise.shape == (16000,) and np.isfinite(noise).all() and noise.std() > 0
    with pytest.raises(UserError, match="noise type"):
        synth_noise("thunder", rng, 100)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(UserError, match="n_train"):
        make_synthetic_corpus(tmp_path, n_train=0)
    with pytest.raises(UserError, match="SyntheticConfig"):
        make_synthetic_corpus(tmp_path, cfg=SyntheticConfig(min_seconds=5, max_seconds=2))


def test_same_settings_reuse_the_corpus_and_give_identical_archives(tmp_path):
    import hashlib

    def digests(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.7z")}

    first = digests(make_synthetic_corpus(tmp_path / "a", n_train=2, n_test=1, seed=3))
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("*.7z")}
    again = make_synthetic_corpus(tmp_path / "a", n_train=2, n_test=1, seed=3)
    assert {p.name: p.stat().st_mtime_ns for p in again.glob("*.7z")} == written  # not rewritten
    assert digests(again) == first
    # Made afresh elsewhere: byte-identical (fixed file times), so an extraction stays valid.
    assert digests(make_synthetic_corpus(tmp_path / "b", n_train=2, n_test=1, seed=3)) == first
    # Other settings: made again, not reused.
    more = make_synthetic_corpus(tmp_path / "a", n_train=3, n_test=1, seed=3)
    data = prepare_kaggle_data(more, tmp_path / "work")
    assert len(data.train) == 3
