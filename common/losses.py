"""Training losses, composable with weights from `LossConfig`.

Terms (a weight of 0 switches a term off and skips its cost):
- `log_mag_l1`: the seed notebooks' L1 between log1p magnitudes.
- `compressed_mag` / `compressed_complex`: MSE between power-law compressed spectra
  (|S|^c, and S/|S| * |S|^c for real and imaginary parts; c = 0.3), the GTCRN recipe.
- `mrstft`: multi-resolution STFT loss (spectral convergence + log-magnitude L1) on waveforms.
- `si_sdr`: negative SI-SDR in dB of the waveforms (so lower is better, like every term).

The defaults are GTCRN's weighting (30 x complex + 70 x magnitude + SI-SDR/10);
`LossConfig.seed()` is the seed notebooks' loss, for reproducing crn/transformer/dpt as they were.
"""

from __future__ import annotations

import torch
from torch import nn

from common.audio import istft
from common.config import LOSS_TERMS, LossConfig, StftConfig

LOSS_EPS = 1e-8


def log_magnitude_l1(est_spec: torch.Tensor, clean_spec: torch.Tensor) -> torch.Tensor:
    return (torch.log1p(est_spec.abs()) - torch.log1p(clean_spec.abs())).abs().mean()


def compress_spectrum(spec: torch.Tensor, c: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """(|S|^c, S/|S| * |S|^c as real (..., 2)); the eps keeps the gradient finite at |S| = 0."""
    mag = (spec.real.square() + spec.imag.square() + LOSS_EPS).sqrt()
    gain = mag ** (c - 1.0)
    return mag**c, torch.stack([spec.real * gain, spec.imag * gain], dim=-1)


def si_sdr_db(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-signal SI-SDR in dB over the last axis (both zero-meaned; est projected on ref)."""
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + LOSS_EPS)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10(
        (target.square().sum(-1) + LOSS_EPS) / (noise.square().sum(-1) + LOSS_EPS)
    )


def multi_resolution_stft_loss(
    est: torch.Tensor, ref: torch.Tensor, ffts: tuple[int, ...] = (256, 512, 1024)
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 of log magnitudes (waveforms (B, N))."""
    total = est.new_zeros(())
    for n_fft in ffts:
        window = torch.hann_window(n_fft, device=est.device)

        def mag(x: torch.Tensor, n_fft: int = n_fft, window: torch.Tensor = window) -> torch.Tensor:
            spec = torch.stft(x, n_fft, n_fft // 4, window=window, center=True, return_complex=True)
            return (spec.real.square() + spec.imag.square()).clamp_min(1e-7).sqrt()

        est_mag, ref_mag = mag(est), mag(ref)
        convergence = torch.linalg.vector_norm(ref_mag - est_mag, dim=(-2, -1)) / (
            torch.linalg.vector_norm(ref_mag, dim=(-2, -1)) + LOSS_EPS
        )
        total = total + convergence.mean() + (est_mag.log() - ref_mag.log()).abs().mean()
    return total / len(ffts)


class EnhancementLoss(nn.Module):
    """`loss(est_spec, clean_spec, est_wav, clean_wav) -> (total, parts)`.

    `parts` maps each active term to its unweighted value (floats, for logging); `total` is the
    weighted sum. Waveforms may be None when only spectral terms are on; otherwise they are
    rebuilt from the spectra with the model's STFT when missing.
    """

    def __init__(self, cfg: LossConfig | None = None, stft: StftConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or LossConfig()
        self.stft = stft or StftConfig()
        # LossConfig checked its weights when it was made (finite, >= 0, one of them on).
        self.weights = {name: float(getattr(cfg, name)) for name in LOSS_TERMS}

    def _waveform(self, wav: torch.Tensor | None, spec: torch.Tensor, length: int) -> torch.Tensor:
        return wav if wav is not None else istft(spec, self.stft, length)

    def forward(
        self,
        est_spec: torch.Tensor,
        clean_spec: torch.Tensor,
        est_wav: torch.Tensor | None = None,
        clean_wav: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        w, cfg = self.weights, self.cfg
        terms: dict[str, torch.Tensor] = {}
        if w["log_mag_l1"]:
            terms["log_mag_l1"] = log_magnitude_l1(est_spec, clean_spec)
        if w["compressed_mag"] or w["compressed_complex"]:
            est_mag, est_ri = compress_spectrum(est_spec, cfg.compress)
            ref_mag, ref_ri = compress_spectrum(clean_spec, cfg.compress)
            if w["compressed_mag"]:
                terms["compressed_mag"] = nn.functional.mse_loss(est_mag, ref_mag)
            if w["compressed_complex"]:
                # Sum of the real and imaginary MSEs, as in GTCRN.
                terms["compressed_complex"] = 2 * nn.functional.mse_loss(est_ri, ref_ri)
        if w["mrstft"] or w["si_sdr"]:
            if est_wav is None and clean_wav is None:
                length = self.stft.hop_length * (est_spec.shape[-1] - 1)
            else:
                length = (est_wav if est_wav is not None else clean_wav).shape[-1]
            est_wav = self._waveform(est_wav, est_spec, length)
            clean_wav = self._waveform(clean_wav, clean_spec, length)
            if w["mrstft"]:
                terms["mrstft"] = multi_resolution_stft_loss(est_wav, clean_wav, cfg.mrstft_ffts)
            if w["si_sdr"]:
                terms["si_sdr"] = -si_sdr_db(est_wav, clean_wav).mean()
        total = sum(w[name] * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
