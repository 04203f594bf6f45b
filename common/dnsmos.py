"""DNSMOS: speech quality without a clean reference (ITU-T P.835 SIG / BAK / OVRL and P.808 MOS).

PESQ, STOI and SI-SDR need the clean signal; a phone call or a lecture has none. DNSMOS
(Reddy et al., ICASSP 2022; the DNS Challenge ranks systems by it) predicts the listeners'
scores from the signal alone with small ONNX models. They ship in the `speechmos` package (MIT),
so nothing is downloaded: its own `DNSMOS` class does the feature extraction (librosa's mel
spectrogram for P.808), the tiling of clips shorter than 9.01 s, the 9 s windows every second
and the polynomial mapping, so a score here is `speechmos.dnsmos.run(wav, 16000)`'s. Only the
onnxruntime sessions differ: one thread each, on the CPU (evaluation runs one process per core).
The model is the DNS Challenge's P.835 one, not the "personalized" variant (which also
penalises an interfering talker).

A signal that cannot be scored (empty, NaN samples, silence) raises `MetricError`, like the other
metrics; other rates are resampled to 16 kHz, and samples beyond +-1 are clipped (as writing the
signal to a 16-bit file would; the reference refuses them).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE, resample
from common.errors import UserError
from common.metric_names import DNSMOS_METRICS
from common.metrics import MetricError, scorable

DNSMOS_REQUIREMENTS = "'speechmos>=0.0.1.1,<0.0.2' 'onnxruntime>=1.18,<2' 'librosa>=0.10,<1'"
DNSMOS_INSTALL_HINT = (
    f"install them with `.venv/bin/pip install {DNSMOS_REQUIREMENTS}` (make setup)"
)
# The package's model files (speechmos/dnsmos.py picks the same ones for model_type="dnsmos").
PRIMARY_MODEL = Path("dnsmos_models") / "sig_bak_ovr.onnx"
P808_MODEL = Path("dnsmos_models") / "model_v8.onnx"
# speechmos's keys for DNSMOS_METRICS, in that order.
SPEECHMOS_KEYS = ("sig_mos", "bak_mos", "ovrl_mos", "p808_mos")

_scorers: dict[int, object] = {}  # per process: a forked worker opens its own sessions


def _model_files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"DNSMOS needs the speechmos package, which is not installed: {DNSMOS_INSTALL_HINT}"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for path in (root / PRIMARY_MODEL, root / P808_MODEL):
        if not path.is_file():
            raise UserError(
                f"{path}: DNSMOS model file missing from the speechmos package; reinstall it "
                f"({DNSMOS_INSTALL_HINT})"
            )
    return root / PRIMARY_MODEL, root / P808_MODEL


def load_dnsmos() -> object:
    """speechmos's `DNSMOS` scorer on the package's models, one onnxruntime thread per session
    (opened once per process). Raises a one-line `UserError` naming what to install."""
    scorer = _scorers.get(os.getpid())
    if scorer is not None:
        return scorer
    primary, p808 = _model_files()
    try:
        import onnxruntime as ort
        from speechmos.dnsmos import DNSMOS
    except ImportError as exc:
        raise UserError(f"DNSMOS cannot be imported ({exc}): {DNSMOS_INSTALL_HINT}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    # DNSMOS.__init__ opens the sessions with every thread; set its fields the same way instead.
    scorer = DNSMOS.__new__(DNSMOS)
    scorer.primary_model_path = str(primary)
    scorer.onnx_sess = ort.InferenceSession(str(primary), options, providers=providers)
    scorer.p808_onnx_sess = ort.InferenceSession(str(p808), options, providers=providers)
    # The P.808 features' first call imports most of librosa and scipy.signal (seconds): done
    # here, so that worker processes forked after this inherit them.
    scorer.audio_melspec(np.zeros(SAMPLE_RATE, dtype=np.float32))
    _scorers.clear()
    _scorers[os.getpid()] = scorer
    return scorer


def dnsmos(wav: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """{dnsmos_sig, dnsmos_bak, dnsmos_ovrl, dnsmos_p808} of one mono signal (1..5 each)."""
    wav = scorable(wav, "signal")
    if sr != SAMPLE_RATE:
        wav = resample(wav, sr, SAMPLE_RATE)
    # float32, as speechmos reads a file; its P.808 features are computed at the input's dtype.
    wav = np.clip(wav, -1.0, 1.0).astype(np.float32)
    scores = load_dnsmos()(wav, SAMPLE_RATE, False)
    values = {name: float(scores[key]) for name, key in zip(DNSMOS_METRICS, SPEECHMOS_KEYS)}
    bad = [f"{name}={value}" for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise MetricError(f"dnsmos is not finite ({', '.join(bad)})")
    return values
