# %% [markdown]
# # Builder example: a spectral gate on a synthetic voiced signal
#
# A small notebook for the builder's tests: it imports `common` like the real notebooks, takes
# the standard parameters, and writes a `summary.json` whose metrics come from real waveforms.

# %% tags=["parameters"]
data_source = "synthetic"
work_dir = "work"
output_dir = "outputs"
epochs = 1
batch_size = 2
segment_seconds = 2.0
max_minutes = 1.0
resume_checkpoint = None
seed = 0
num_workers = 0
max_train_pairs = None
max_test_pairs = 2
device = "cpu"
nproc = 1

# %%
import json
from pathlib import Path

import numpy as np
import torch
from pesq import pesq
from pystoi import stoi

from common.audio import SAMPLE_RATE, istft, stft
from common.config import StftConfig
from common.errors import UserError as ExampleError


# %% [markdown]
# A voiced "syllable" train (120 Hz harmonics, 4 Hz envelope) plus white noise at 5 dB SNR.
# %%
def voiced_clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (0.1 * voiced * envelope).astype(np.float32)


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / (ref @ ref) * ref
    return float(10 * np.log10((target @ target) / ((est - target) @ (est - target))))


if max_test_pairs is None or max_test_pairs < 1:
    raise ExampleError(f"max_test_pairs={max_test_pairs}: use 1 or more")
rng = np.random.default_rng(seed)
cfg = StftConfig()
rows = []
for _ in range(max_test_pairs):
    clean = voiced_clip(rng, segment_seconds)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt((clean**2).mean() / (noise**2).mean() / 10 ** (5 / 10))
    noisy = clean + noise
    spec = stft(torch.from_numpy(noisy), cfg)
    floor = spec.abs().median(dim=-1, keepdim=True).values
    gate = (spec.abs() > 2 * floor).float()
    enhanced = istft(spec * gate, cfg, noisy.size).numpy()
    for label, wav in (("noisy", noisy), ("enhanced", enhanced)):
        rows.append(
            {
                "signal": label,
                "pesq": pesq(SAMPLE_RATE, clean, wav, "wb"),
                "stoi": stoi(clean, wav, SAMPLE_RATE),
                "estoi": stoi(clean, wav, SAMPLE_RATE, extended=True),
                "si_sdr": si_sdr_db(clean, wav),
            }
        )

# %%
from common.metric_names import METRIC_NAMES as metric_names


def stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


metrics = {"count": max_test_pairs, "failures": []}
for label in ("noisy", "enhanced"):
    metrics[label] = {m: stats([r[m] for r in rows if r["signal"] == label]) for m in metric_names}
metrics["delta"] = {
    m: stats([e[m] - n[m] for n, e in zip(rows[::2], rows[1::2])]) for m in metric_names
}
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
summary = {"model": "spectral-gate", "build": BUILD_INFO, "metrics": metrics}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(metrics["delta"], indent=1))
