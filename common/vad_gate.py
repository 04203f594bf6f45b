"""The VAD gate: non-speech attenuated to a floor, with fades placed outside the speech so that
speech itself is never attenuated; `VadGatedEnhancer` is what `enhance --vad` runs."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

from common.audio import SAMPLE_RATE
from common.config import GateConfig
from common.enhance import Enhancer
from common.errors import UserError
from common.vad import VadResult, detect_speech


def gate_gain(vad: VadResult, cfg: GateConfig | None = None) -> np.ndarray:
    """Per-sample gain: 1 in speech, `floor_db` in non-speech, raised-cosine fades in between.

    The fade depends on the distance to the nearest speech sample, so it is continuous (no
    clicks) and only ever lowers non-speech.
    """
    cfg = cfg or GateConfig()
    floor = 10 ** (cfg.floor_db / 20)
    mask = vad.mask()
    if mask.all():
        return np.ones(vad.n_samples, dtype=np.float32)
    if not mask.any():
        return np.full(vad.n_samples, floor, dtype=np.float32)
    distance = distance_transform_edt(~mask)
    fade = max(cfg.fade_ms / 1000 * vad.sr, 1.0)
    ramp = 0.5 * (1 + np.cos(np.pi * np.minimum(distance / fade, 1.0)))
    return (floor + (1 - floor) * ramp).astype(np.float32)


def apply_vad_gate(
    wav: np.ndarray,
    sr: int = SAMPLE_RATE,
    cfg: GateConfig | None = None,
    *,
    vad: VadResult | None = None,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, VadResult]:
    """Attenuate the non-speech parts of `wav` (typically the enhanced output).

    Detection uses `vad` when given, else `wav` together with `reference` (the noisy input) when
    given. Returns the gated signal and the VAD used.
    """
    cfg = cfg or GateConfig()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if vad is None:
        union = () if reference is None else (np.asarray(reference, np.float32)[: len(wav)],)
        vad = detect_speech(wav, sr, cfg.vad, union_with=union)
    if vad.n_samples != len(wav):
        raise UserError(
            f"VAD covers {vad.n_samples} samples but the signal has {len(wav)}; detect on this signal"
        )
    return (wav * gate_gain(vad, cfg)).astype(np.float32), vad


class VadGatedEnhancer:
    """The VAD gate as one more wrapper around a `common.enhance.Enhancer` (any back-end):
    what `enhance --vad` runs. Same interface: `enhance(wav, sr)`, `model_name`, `device`.

    Each channel is gated with the VAD of its own noisy input and enhanced output (union).
    """

    def __init__(self, enhancer: Enhancer, cfg: GateConfig | None = None) -> None:
        self.enhancer = enhancer
        self.gate = cfg or GateConfig()

    @property
    def model_name(self) -> str:
        return self.enhancer.model_name

    @property
    def device(self) -> str:
        return f"{self.enhancer.device} + VAD gate"

    def enhance(self, wav: np.ndarray, sr: int) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        out = np.asarray(self.enhancer.enhance(wav, sr), dtype=np.float32)
        if out.ndim == 1:
            return apply_vad_gate(out, sr, self.gate, reference=wav)[0]
        gated = [
            apply_vad_gate(out[:, c], sr, self.gate, reference=wav[:, c])[0]
            for c in range(out.shape[1])
        ]
        return np.ascontiguousarray(np.stack(gated, axis=1))
