"""Speech augmentation (common.augment) and its hook in the mixer (`data.augment_prob`)."""

from __future__ import annotations

import numpy as np
import pytest

from common.augment import RT60_S, augment_speech, room_impulse_response
from common.config import DataConfig
from common.errors import UserError
from common.mixing import MixConfig, MixingDataset

SR = 16000


def voice(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20))
    return (0.1 * harmonics * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_augmented_crops_keep_length_and_level_and_differ() -> None:
    x = voice()
    rms = float(np.sqrt(np.mean(x**2)))
    rng = np.random.default_rng(0)
    outs = [augment_speech(x, rng, SR) for _ in range(20)]
    for y in outs:
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert float(np.sqrt(np.mean(y**2))) == pytest.approx(rms, rel=1e-3)
    assert sum(not np.allclose(y, x) for y in outs) >= len(outs) // 2
    again = [augment_speech(x, np.random.default_rng(0), SR) for _ in range(2)]
    np.testing.assert_array_equal(again[0], again[1])  # reproducible from the generator
    silent = np.zeros(SR, dtype=np.float32)
    np.testing.assert_array_equal(augment_speech(silent, rng, SR), silent)


def test_room_impulse_response_decays_within_its_rt60() -> None:
    rir = room_impulse_response(np.random.default_rng(1), SR)
    assert rir[0] == 1.0 and len(rir) <= int(RT60_S[1] * SR)
    assert np.sum(rir[1:] ** 2) < 1.0  # the direct path dominates


def test_the_mixer_augments_only_training_items(shared_data) -> None:
    speech = sorted((shared_data / "speech").rglob("*.flac"))[:8]
    noise = sorted((shared_data / "noise").rglob("*.flac"))[:4]
    if not speech or not noise:
        pytest.skip("no flac speech/noise in the shared data")

    def item(train: bool, prob: float):
        cfg = MixConfig(segment_seconds=1.0, augment_prob=prob)
        return MixingDataset(speech, noise, cfg, length=4, train=train).mix_item(1)

    plain, augmented = item(True, 0.0), item(True, 1.0)
    assert plain.speech_file == augmented.speech_file and plain.snr_db == augmented.snr_db
    assert not np.allclose(plain.clean, augmented.clean)
    np.testing.assert_array_equal(item(False, 1.0).clean, item(False, 0.0).clean)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_augment_prob_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(UserError, match="augment_prob"):
        DataConfig(augment_prob=value)
    with pytest.raises(UserError, match="augment_prob"):
        MixConfig(augment_prob=value)
