"""Losses: known cases (identical inputs, scaled copies, known SNR) and weight composition."""

from __future__ import annotations

import math

import pytest
import torch

from common.audio import istft, stft
from common.config import StftConfig
from common.errors import UserError
from common.losses import (
    EnhancementLoss,
    LossConfig,
    multi_resolution_stft_loss,
    si_sdr_db,
)

CFG = StftConfig()
TERMS = ("log_mag_l1", "compressed_mag", "compressed_complex", "mrstft", "si_sdr")


def only(term: str, weight: float = 1.0) -> LossConfig:
    zeros = dict.fromkeys(TERMS, 0.0)
    return LossConfig(**{**zeros, term: weight})


def speechlike(n: int = 8000, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Harmonic tones with a syllable-rate envelope: structured, not white noise."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / CFG.sample_rate
    f0 = 120 + 80 * torch.rand(batch, 1, generator=gen)
    wav = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 8))
    return 0.1 * wav * (0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t))


def loss_of(cfg: LossConfig, est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, dict]:
    return EnhancementLoss(cfg, CFG)(stft(est, CFG), stft(ref, CFG), est, ref)


@pytest.mark.parametrize("term", ["log_mag_l1", "compressed_mag", "compressed_complex", "mrstft"])
def test_identical_signals_cost_nothing_and_noise_costs_more(term: str) -> None:
    clean = speechlike()
    noise = 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    same, _ = loss_of(only(term), clean, clean)
    small, _ = loss_of(only(term), clean + 0.3 * noise, clean)
    large, _ = loss_of(only(term), clean + noise, clean)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert 0 < float(small) < float(large)


def test_si_sdr_ignores_scale_and_measures_a_known_snr() -> None:
    clean = speechlike(16000)
    assert float(si_sdr_db(0.3 * clean, clean).min()) > 60
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    noise = noise / noise.norm(dim=-1, keepdim=True) * clean.norm(dim=-1, keepdim=True)
    noise = noise * 10 ** (-10 / 20)  # 10 dB below the signal
    assert si_sdr_db(clean + noise, clean).numpy() == pytest.approx([10.0, 10.0], abs=0.3)
    loss, parts = loss_of(only("si_sdr"), clean + noise, clean)
    assert float(loss) == pytest.approx(-10.0, abs=0.3) and parts["si_sdr"] == float(loss)


def test_weights_compose_as_a_weighted_sum_of_the_parts() -> None:
    clean = speechlike()
    est = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    cfg = LossConfig(log_mag_l1=0.5, compressed_mag=70, compressed_complex=30, mrstft=2, si_sdr=0.1)
    total, parts = loss_of(cfg, est, clean)
    assert set(parts) == set(TERMS)
    assert float(total) == pytest.approx(
        sum(getattr(cfg, k) * v for k, v in parts.items()), rel=1e-5
    )
    for term in TERMS:
        alone, alone_parts = loss_of(only(term, 2.0), est, clean)
        assert alone_parts == pytest.approx({term: parts[term]}, rel=1e-5)
        assert float(alone) == pytest.approx(2.0 * parts[term], rel=1e-5)


def test_seed_preset_is_the_log_magnitude_l1_alone() -> None:
    clean = speechlike()
    _, parts = loss_of(LossConfig.seed(), 0.5 * clean, clean)
    assert list(parts) == ["log_mag_l1"]


def test_waveforms_are_rebuilt_from_spectra_when_not_given() -> None:
    clean = speechlike(8192)
    est = 0.7 * clean
    loss_fn = EnhancementLoss(only("si_sdr"), CFG)
    with_wav, _ = loss_fn(stft(est, CFG), stft(clean, CFG), est, clean)
    est_spec, clean_spec = stft(est, CFG), stft(clean, CFG)
    without, _ = loss_fn(est_spec, clean_spec, None, istft(clean_spec, CFG, 8192))
    assert float(without) == pytest.approx(float(with_wav), abs=1e-3)


def test_gradients_stay_finite_on_silent_bins() -> None:
    clean = speechlike()
    est_spec = stft(clean, CFG) * 0.5
    est_spec[:, :, :3] = 0  # exact zeros: |S|^0.3 has an infinite slope there without the eps
    est_spec.requires_grad_(True)
    loss, _ = EnhancementLoss(LossConfig(), CFG)(est_spec, stft(clean, CFG), None, clean)
    loss.backward()
    assert torch.isfinite(est_spec.grad.real).all() and torch.isfinite(est_spec.grad.imag).all()


def test_multi_resolution_stft_is_zero_only_for_a_match() -> None:
    clean = speechlike()
    assert float(multi_resolution_stft_loss(clean, clean)) == pytest.approx(0.0, abs=1e-6)
    assert float(multi_resolution_stft_loss(0.5 * clean, clean)) > 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(dict.fromkeys(TERMS, 0.0), "every loss weight is 0"), ({"si_sdr": -1.0}, "si_sdr=-1.0")],
)
def test_bad_weights_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        EnhancementLoss(LossConfig(**overrides), CFG)
