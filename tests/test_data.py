"""Pairing, Kaggle archive extraction, aligned crops and the alignment guard."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import py7zr
import pytest
import soundfile as sf
import torch

import common.kaggle_data as kaggle_data
from common.alignment import check_alignment, misalignment
from common.audio import AudioError
from common.errors import UserError
from common.kaggle_data import EXTRACTED_MARKER, extract_archive, prepare_kaggle_data
from common.paired_dataset import PairedDataset
from common.pairs import AudioPair, discover_pairs, find_pair_dirs, split_pairs

SR = 16000


def write_wav(path: Path, wav: np.ndarray, sr: int = SR) -> Path:
    """Float WAV so that noisy - clean is exact in the crop tests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wav, dtype=np.float32), sr, subtype="FLOAT")
    return path


def make_pair_folder(root: Path, names: list[str], seconds: float = 2.0, seed: int = 0) -> dict:
    """root/noisy + root/clean with noisy = clean + noise; returns the noise by name."""
    rng = np.random.default_rng(seed)
    noises = {}
    for name in names:
        n = int(seconds * SR)
        # Speech-like: a slowly modulated tone, so crops at different positions differ.
        t = np.arange(n) / SR
        clean = 0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * rng.uniform(1, 3) * t)
        clean += 0.1 * rng.standard_normal(n)
        noise = 0.05 * rng.standard_normal(n)
        write_wav(root / "clean" / name, clean)
        write_wav(root / "noisy" / name, clean + noise)
        noises[name] = noise.astype(np.float32)
    return noises


def make_7z(folder: Path, archive: Path, arcname: str) -> Path:
    with py7zr.SevenZipFile(archive, "w") as z:
        z.writeall(folder, arcname)
    return archive


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- pairing


def test_pairs_by_relative_path_and_names_unpaired_files(tmp_path):
    make_pair_folder(tmp_path, ["a.wav", "sub/b.wav"])
    write_wav(tmp_path / "noisy" / "orphan_noisy.wav", np.zeros(SR))
    write_wav(tmp_path / "clean" / "orphan_clean.wav", np.zeros(SR))
    # Same file name in another subfolder must not pair with sub/b.wav.
    write_wav(tmp_path / "clean" / "other" / "b.wav", np.zeros(SR))
    with pytest.warns(UserWarning) as record:
        pairs = discover_pairs(tmp_path / "noisy", tmp_path / "clean")
    assert [p.name for p in pairs] == ["a.wav", "sub/b.wav"]
    assert pairs[1].clean == tmp_path / "clean" / "sub" / "b.wav"
    messages = " ".join(str(w.message) for w in record)
    assert "orphan_noisy" in messages and "orphan_clean" in messages and "other/b" in messages


def test_pairing_descends_through_unknown_top_folders(tmp_path):
    make_pair_folder(tmp_path / "raw", ["x.wav", "y.wav"])
    (tmp_path / "n" / "inner_noisy").mkdir(parents=True)
    (tmp_path / "c" / "deeper" / "inner_clean").mkdir(parents=True)
    (tmp_path / "raw" / "noisy").rename(tmp_path / "n" / "inner_noisy" / "audio")
    (tmp_path / "raw" / "clean").rename(tmp_path / "c" / "deeper" / "inner_clean" / "audio")
    pairs = discover_pairs(tmp_path / "n", tmp_path / "c")
    assert [p.name for p in pairs] == ["x.wav", "y.wav"]


def test_missing_empty_and_disjoint_folders_are_one_line_errors(tmp_path):
    with pytest.raises(UserError) as exc:
        discover_pairs(tmp_path / "nope", tmp_path / "nope2")
    assert "nope" in one_line(exc)
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    with pytest.raises(UserError) as exc:
        discover_pairs(tmp_path / "noisy", tmp_path / "clean")
    assert "no .wav/.flac" in one_line(exc)
    write_wav(tmp_path / "noisy" / "a.wav", np.zeros(SR))
    write_wav(tmp_path / "clean" / "b.wav", np.zeros(SR))
    with pytest.raises(UserError) as exc, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        discover_pairs(tmp_path / "noisy", tmp_path / "clean")
    assert "no file names in common" in one_line(exc)


def test_find_pair_dirs_accepts_both_layouts(tmp_path):
    (tmp_path / "a" / "noisy").mkdir(parents=True)
    (tmp_path / "a" / "clean").mkdir()
    assert find_pair_dirs(tmp_path / "a") == (tmp_path / "a" / "noisy", tmp_path / "a" / "clean")
    (tmp_path / "b" / "wrapper" / "test").mkdir(parents=True)
    (tmp_path / "b" / "wrapper" / "y_test").mkdir()
    noisy, clean = find_pair_dirs(tmp_path / "b")
    assert (noisy.name, clean.name) == ("test", "y_test")
    (tmp_path / "c" / "wavs").mkdir(parents=True)
    with pytest.raises(UserError) as exc:
        find_pair_dirs(tmp_path / "c")
    assert "wavs" in one_line(exc)


def test_split_pairs_is_deterministic_and_disjoint(tmp_path):
    make_pair_folder(tmp_path, [f"{i:02d}.wav" for i in range(20)], seconds=0.1)
    pairs = discover_pairs(tmp_path / "noisy", tmp_path / "clean")
    train, val = split_pairs(pairs, val_fraction=0.2, seed=3)
    assert len(val) == 4 and len(train) == 16
    assert not {p.name for p in train} & {p.name for p in val}
    assert split_pairs(list(reversed(pairs)), 0.2, seed=3) == (train, val)
    assert split_pairs(pairs, 0.2, seed=4)[1] != val


# ---------------------------------------------------------------- archives


@pytest.fixture
def archive(tmp_path) -> Path:
    make_pair_folder(tmp_path / "src", ["a.wav", "b.wav", "c.wav"], seconds=0.5)
    return make_7z(tmp_path / "src" / "noisy", tmp_path / "test.7z", "inner_top")


def count_extractions(monkeypatch) -> list[int]:
    calls = []
    real = kaggle_data._extract_with_py7zr

    def counting(archive, dest):
        calls.append(1)
        real(archive, dest)

    monkeypatch.setattr(kaggle_data, "_extract_with_py7zr", counting)
    return calls


def test_extraction_is_done_once_and_redone_when_incomplete(tmp_path, archive, monkeypatch):
    calls = count_extractions(monkeypatch)
    dest = tmp_path / "work" / "test"
    extract_archive(archive, dest, use_binary=False)
    assert sorted(p.name for p in (dest / "inner_top").iterdir()) == ["a.wav", "b.wav", "c.wav"]
    assert (dest / EXTRACTED_MARKER).is_file()
    extract_archive(archive, dest, use_binary=False)
    assert len(calls) == 1  # second call: nothing extracted

    (dest / "inner_top" / "b.wav").unlink()  # a file removed after extraction
    with pytest.warns(UserWarning, match="incomplete extraction"):
        extract_archive(archive, dest, use_binary=False)
    assert len(calls) == 2 and (dest / "inner_top" / "b.wav").is_file()

    (dest / EXTRACTED_MARKER).unlink()  # interrupted before the marker was written
    with pytest.warns(UserWarning, match="incomplete extraction"):
        extract_archive(archive, dest, use_binary=False)
    assert len(calls) == 3 and (dest / EXTRACTED_MARKER).is_file()


def test_truncated_archive_is_a_one_line_error_naming_it(tmp_path, archive):
    data = archive.read_bytes()
    truncated = tmp_path / "cut" / "y_test.7z"
    truncated.parent.mkdir()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as exc:
        extract_archive(truncated, tmp_path / "work" / "y_test", use_binary=False)
    assert "y_test.7z" in one_line(exc) and "download it again" in one_line(exc)
    assert not (tmp_path / "work" / "y_test").exists()  # no half extraction left behind


def test_refuses_to_replace_a_folder_it_did_not_create(tmp_path, archive):
    write_wav(tmp_path / "mine" / "keep.wav", np.zeros(10))
    with pytest.raises(UserError) as exc:
        extract_archive(archive, tmp_path / "mine", use_binary=False)
    assert "not an extraction" in one_line(exc)
    assert (tmp_path / "mine" / "keep.wav").is_file()


def test_prepare_kaggle_data_from_archives_one_folder_deeper(tmp_path):
    src = tmp_path / "src"
    make_pair_folder(src / "train", ["t1.wav", "t2.wav"], seconds=0.5)
    make_pair_folder(src / "test", ["e1.wav"], seconds=0.5)
    mount = tmp_path / "input" / "slug" / "archives"
    mount.mkdir(parents=True)
    make_7z(src / "train" / "noisy", mount / "train.7z", "train")
    make_7z(src / "train" / "clean", mount / "y_train.7z", "y_train")
    make_7z(src / "test" / "noisy", mount / "test.7z", "test_noisy_top")
    make_7z(src / "test" / "clean", mount / "y_test.7z", "clean_top")
    data = prepare_kaggle_data(tmp_path / "input" / "slug", tmp_path / "work")
    assert [p.name for p in data.train] == ["t1.wav", "t2.wav"]
    assert [p.name for p in data.test] == ["e1.wav"]
    assert data.test[0].noisy.read_bytes() == (src / "test" / "noisy" / "e1.wav").read_bytes()
    assert data.test[0].clean.read_bytes() == (src / "test" / "clean" / "e1.wav").read_bytes()


def test_prepare_kaggle_data_from_extracted_folders_and_missing_archive(tmp_path):
    make_pair_folder(tmp_path / "tmp", ["e1.wav"], seconds=0.5)
    (tmp_path / "ds").mkdir()
    (tmp_path / "tmp" / "noisy").rename(tmp_path / "ds" / "test")
    (tmp_path / "tmp" / "clean").rename(tmp_path / "ds" / "y_test")
    data = prepare_kaggle_data(tmp_path / "ds", tmp_path / "work", need_train=False)
    assert [p.name for p in data.test] == ["e1.wav"] and data.train == []
    with pytest.raises(UserError) as exc:
        prepare_kaggle_data(tmp_path / "ds", tmp_path / "work")
    assert "train.7z" in one_line(exc) and "y_train.7z" in one_line(exc)


# ---------------------------------------------------------------- aligned crops


def pairs_of(root: Path):
    return discover_pairs(root / "noisy", root / "clean")


def test_training_crop_is_the_same_position_in_both_files(tmp_path):
    noises = make_pair_folder(tmp_path, ["a.wav", "b.wav", "c.wav"], seconds=3.0)
    dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=0.5, train=True, seed=1)
    starts = set()
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for i, pair in enumerate(dataset.pairs):
            noisy, clean = dataset[i]
            start = dataset.crop_start(i)
            starts.add(start)
            assert noisy.shape == clean.shape == (8000,)
            expected = noises[pair.name][start : start + 8000]
            np.testing.assert_allclose((noisy - clean).numpy(), expected, atol=1e-6)
    assert len(starts) > 3  # crops really move


def test_training_crops_reproducible_and_differ_across_epochs(tmp_path):
    make_pair_folder(tmp_path, ["a.wav", "b.wav"], seconds=4.0)
    pairs = pairs_of(tmp_path)
    first = PairedDataset(pairs, segment_seconds=0.5, seed=7)
    again = PairedDataset(pairs, segment_seconds=0.5, seed=7)
    assert [first.crop_start(i) for i in range(2)] == [again.crop_start(i) for i in range(2)]
    assert torch.equal(first[0][0], again[0][0])
    epoch0 = [first.crop_start(i) for i in range(2)]
    first.set_epoch(1)
    assert [first.crop_start(i) for i in range(2)] != epoch0


def test_evaluation_crops_are_deterministic_middle(tmp_path):
    make_pair_folder(tmp_path, ["a.wav"], seconds=4.0)
    dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=1.0, train=False, seed=1)
    other = PairedDataset(pairs_of(tmp_path), segment_seconds=1.0, train=False, seed=99)
    dataset.set_epoch(5)
    assert dataset.crop_start(0) == other.crop_start(0) == (4 * SR - SR) // 2
    assert torch.equal(dataset[0][1], other[0][1])
    whole = PairedDataset(pairs_of(tmp_path), segment_seconds=None, train=False)
    assert whole[0][0].shape == (4 * SR,)


def test_short_clip_is_zero_padded(tmp_path):
    make_pair_folder(tmp_path, ["a.wav"], seconds=1.25)
    dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=3.0, train=True)
    noisy, clean = dataset[0]
    file_clean, _ = sf.read(str(tmp_path / "clean" / "a.wav"), dtype="float32")
    assert clean.shape == (3 * SR,)
    np.testing.assert_array_equal(clean[:20000].numpy(), file_clean)
    assert not clean[20000:].any() and not noisy[20000:].any()


def test_length_mismatch_is_cut_to_the_shorter_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "noisy" / "m.wav", rng.standard_normal(2 * SR) * 0.1)
    write_wav(tmp_path / "clean" / "m.wav", rng.standard_normal(int(1.5 * SR)) * 0.1)
    with pytest.warns(UserWarning, match=r"different noisy/clean lengths.*m\.wav"):
        dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=None, train=False)
    assert dataset.lengths == [int(1.5 * SR)]
    assert dataset[0][0].shape == dataset[0][1].shape == (int(1.5 * SR),)


def test_bad_files_are_skipped_with_warnings_naming_them(tmp_path):
    make_pair_folder(tmp_path, ["good.wav"], seconds=2.0)
    make_pair_folder(tmp_path, ["short.wav"], seconds=0.5, seed=1)
    (tmp_path / "noisy" / "corrupt.wav").write_bytes(b"RIFF not really a wav")
    write_wav(tmp_path / "clean" / "corrupt.wav", np.zeros(2 * SR))
    with pytest.warns(UserWarning) as record:
        dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=1.0)
    messages = " ".join(str(w.message) for w in record)
    assert "corrupt.wav" in messages and "short.wav" in messages
    assert [p.name for p in dataset.pairs] == ["good.wav"]


def test_stereo_and_other_rates_are_converted(tmp_path):
    t = np.arange(2 * 48000) / 48000
    tone = 0.3 * np.sin(2 * np.pi * 300 * t)
    write_wav(tmp_path / "noisy" / "s.wav", np.stack([tone, tone], axis=1), sr=48000)
    write_wav(tmp_path / "clean" / "s.wav", tone, sr=48000)
    with pytest.warns(UserWarning, match="not 16 kHz mono"):
        dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=1.0, train=False)
    noisy, clean = dataset[0]
    assert noisy.shape == (SR,) and dataset.lengths == [2 * SR]
    np.testing.assert_allclose(noisy.numpy(), clean.numpy(), atol=1e-4)


def test_nan_file_found_while_reading_is_skipped_not_fatal(tmp_path):
    make_pair_folder(tmp_path, ["a.wav", "b.wav"], seconds=1.5)
    broken = np.full(int(1.5 * SR), np.nan, dtype=np.float32)
    write_wav(tmp_path / "noisy" / "a.wav", broken)
    dataset = PairedDataset(pairs_of(tmp_path), segment_seconds=1.0, train=False)
    with pytest.warns(UserWarning, match=r"a\.wav.*NaN"):
        noisy, clean = dataset[0]
    assert torch.isfinite(noisy).all()
    assert torch.equal(clean, dataset[1][1])  # the next pair was used instead


# ---------------------------------------------------------------- the alignment guard


class IndependentCropDataset(torch.utils.data.Dataset):
    """The team's old bug: noisy and clean each cropped at their OWN random position."""

    def __init__(self, pairs, segment: int, seed: int = 0) -> None:
        self.pairs, self.segment = pairs, segment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def _crop(self, path: Path) -> torch.Tensor:
        wav, _ = sf.read(str(path), dtype="float32")
        start = int(self.rng.integers(0, len(wav) - self.segment))
        return torch.from_numpy(wav[start : start + self.segment])

    def __getitem__(self, i):
        return self._crop(self.pairs[i].noisy), self._crop(self.pairs[i].clean)


def test_alignment_guard_trips_for_independent_crops_and_passes_aligned(tmp_path):
    make_pair_folder(tmp_path, [f"{i}.wav" for i in range(8)], seconds=4.0)
    pairs = pairs_of(tmp_path)
    aligned = check_alignment(PairedDataset(pairs, segment_seconds=0.5, seed=0))
    assert aligned > 0.9
    with pytest.raises(UserError) as exc:
        check_alignment(IndependentCropDataset(pairs, segment=8000))
    assert "not aligned" in one_line(exc)


def test_alignment_guard_trips_for_mispaired_files(tmp_path):
    make_pair_folder(tmp_path, ["a.wav", "b.wav", "c.wav"], seconds=2.0)
    pairs = pairs_of(tmp_path)
    shuffled = [AudioPair(p.name, p.noisy, pairs[(i + 1) % 3].clean) for i, p in enumerate(pairs)]
    with pytest.raises(UserError, match="correlation"):
        check_alignment(PairedDataset(shuffled, segment_seconds=1.0, train=False))


def test_alignment_guard_refuses_all_silent_data(tmp_path):
    write_wav(tmp_path / "noisy" / "z.wav", np.zeros(2 * SR))
    write_wav(tmp_path / "clean" / "z.wav", np.zeros(2 * SR))
    with pytest.raises(UserError, match="silent"):
        check_alignment(PairedDataset(pairs_of(tmp_path), segment_seconds=1.0))


def test_audio_error_is_a_user_error():
    # The CLI relies on this to print one line instead of a traceback.
    assert issubclass(AudioError, UserError)


def test_misalignment_names_a_shift_or_another_recording():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(3 * SR).astype(np.float32)
    noisy = clean + 0.5 * rng.standard_normal(3 * SR).astype(np.float32)
    assert misalignment(noisy, clean) is None
    late = np.concatenate([np.zeros(SR // 2, np.float32), noisy])[: len(noisy)]
    assert "noisy lags clean by 0.50 s" in misalignment(late, clean)
    early = np.concatenate([noisy[SR // 4 :], np.zeros(SR // 4, np.float32)])
    assert "noisy lags clean by -0.25 s" in misalignment(early, clean)
    other = rng.standard_normal(3 * SR).astype(np.float32)
    assert "not the same recording" in misalignment(other, clean)


def test_alignment_guard_names_the_one_bad_pair_among_good_ones(tmp_path):
    # One pair in six from another recording: the mean (about 0.8) would pass; the pair is named.
    make_pair_folder(tmp_path, [f"{i}.wav" for i in range(6)], seconds=2.0)
    pairs = pairs_of(tmp_path)
    bad = AudioPair(pairs[3].name, pairs[3].noisy, pairs[4].clean)
    dataset = PairedDataset([*pairs[:3], bad, *pairs[4:]], segment_seconds=1.0, train=False)
    with pytest.raises(UserError) as exc:
        check_alignment(dataset)
    message = one_line(exc)
    assert "1 of 6" in message and pairs[3].name in message and pairs[2].name not in message
