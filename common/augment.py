"""Speech augmentation for training mixtures: more talkers, rooms and channels from ~100 minutes.

`augment_speech` changes a clean training crop before it is mixed, and the changed crop is also
the training target: the model still only learns to remove noise, on a wider variety of voices,
rooms and microphones than the speech folder holds. Each effect is drawn independently:

- speed: resampled by a factor in 0.9..1.1 (tempo and pitch together, as Kaldi's speed
  perturbation: a new "talker" per factor), then cut or zero-padded back to the crop length;
- EQ: a low and a high shelf of +-6 dB at random corner frequencies (microphone and channel
  colour);
- bandwidth: a low-pass at 3.5..7.5 kHz (telephone, low-bit-rate and cheap-microphone speech);
- room: a synthetic impulse response (exponentially decaying noise, RT60 0.15..0.6 s, direct path
  first), normalised to the crop's level.

The level is left alone: the mixer draws the mixture's level itself. Noise is not augmented.
Everything is drawn from the caller's generator, so items stay reproducible from their seed.
"""

from __future__ import annotations

import math

import numpy as np

SPEED_RANGE = (0.9, 1.1)
SHELF_DB = 6.0
LOWPASS_HZ = (3500.0, 7500.0)
RT60_S = (0.15, 0.6)
# Share of augmented crops that get each effect.
P_SPEED, P_EQ, P_BANDWIDTH, P_ROOM = 0.5, 0.5, 0.2, 0.25


def _resample_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """x played `factor` times faster (linear interpolation), same length (zero tail if faster)."""
    n = len(x)
    pos = np.arange(n) * factor
    out = np.interp(pos, np.arange(n), x, right=0.0)
    return out.astype(np.float32)


def _biquad_shelf(f0: float, gain_db: float, sr: int, high: bool) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook shelving filter (slope 1): (b, a)."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / sr
    cos_w, alpha = math.cos(w0), math.sin(w0) / 2 * math.sqrt(2)
    sq = 2 * math.sqrt(a_gain) * alpha
    sign = -1.0 if high else 1.0
    b = a_gain * np.array(
        [
            (a_gain + 1) - sign * (a_gain - 1) * cos_w + sq,
            2 * sign * ((a_gain - 1) - sign * (a_gain + 1) * cos_w),
            (a_gain + 1) - sign * (a_gain - 1) * cos_w - sq,
        ]
    )
    a = np.array(
        [
            (a_gain + 1) + sign * (a_gain - 1) * cos_w + sq,
            -2 * sign * ((a_gain - 1) + sign * (a_gain + 1) * cos_w),
            (a_gain + 1) + sign * (a_gain - 1) * cos_w - sq,
        ]
    )
    return b / a[0], a / a[0]


def _lowpass(cutoff: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import butter

    b, a = butter(6, cutoff / (sr / 2))
    return b, a


def room_impulse_response(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Exponentially decaying noise with a direct path at t=0; RT60 drawn from `RT60_S`."""
    rt60 = float(rng.uniform(*RT60_S))
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * sr)] = 0.0  # the first reflections arrive after the direct sound
    rir = 0.3 * tail / max(float(np.sqrt(np.sum(tail**2))), 1e-9)
    rir[0] = 1.0
    return rir


def augment_speech(x: np.ndarray, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """A changed copy of the clean crop `x` (same length, same RMS level)."""
    from scipy.signal import fftconvolve, lfilter

    y = x.astype(np.float64)
    rms = float(np.sqrt(np.mean(y**2))) if y.size else 0.0
    if rms == 0.0:
        return x
    # Fixed draw order: one number per decision whatever is applied.
    u = rng.random(4)
    speed = float(rng.uniform(*SPEED_RANGE))
    low_f, high_f = float(rng.uniform(100, 400)), float(rng.uniform(2000, 6000))
    low_g, high_g = rng.uniform(-SHELF_DB, SHELF_DB, size=2)
    cutoff = float(rng.uniform(*LOWPASS_HZ))
    if u[0] < P_SPEED:
        y = _resample_speed(y, speed).astype(np.float64)
    if u[1] < P_EQ:
        y = lfilter(*_biquad_shelf(low_f, float(low_g), sr, high=False), y)
        y = lfilter(*_biquad_shelf(high_f, float(high_g), sr, high=True), y)
    if u[2] < P_BANDWIDTH:
        y = lfilter(*_lowpass(cutoff, sr), y)
    if u[3] < P_ROOM:
        y = fftconvolve(y, room_impulse_response(rng, sr))[: len(y)]
    out_rms = float(np.sqrt(np.mean(y**2)))
    if out_rms > 0:
        y *= rms / out_rms
    return y.astype(np.float32)


def augment_item(x: np.ndarray, rng: np.random.Generator, prob: float, sr: int) -> np.ndarray:
    """The mixer's hook: `x` augmented for a share `prob` of the crops (`data.augment_prob`)."""
    return augment_speech(x, rng, sr) if rng.random() < prob else x
