# %% [markdown]
# # Voice activity detection (Silero VAD): speech-aware evaluation and VAD gating
#
# **What this notebook tests.** Whole-file metrics average speech and pauses together. Here the
# Silero VAD splits each test file into speech and non-speech: metrics are computed on the
# speech regions next to the whole-file ones, the noise left in the pauses is measured (dB), and
# a VAD-gated output (pauses attenuated to a floor with smooth fades) is compared with the plain
# enhanced output, so the table says whether gating helps.
#
# **The lesson from the team's history it guards against.** Review 3 planned "SileroVAD
# integration" as a checkbox. A VAD only earns its place if the numbers say so: every number
# here comes from waveforms, and the VAD model is loaded from the `silero-vad` package itself
# (never a hub download that fails offline).

# %% tags=["parameters"]
checkpoint = "auto"  # a best.pt path; "auto": the newest best.pt under /kaggle/input
overrides = {"data.max_test_pairs": 20}  # changes to the run's configuration (test data, ...)
output_dir = "auto"  # /kaggle/working on Kaggle, outputs/vad elsewhere
vad_floor_db = -20.0  # gain of the non-speech regions in the gated output

# %% [markdown]
# ## Silero VAD
# `silero-vad` is installed without its dependencies: it declares torchaudio, which it does not
# need here and which could replace the image's torch.

# %%
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("silero_vad") is None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "silero-vad"], check=True
    )

# %% [markdown]
# ## Checkpoint, environment and test data

# %%
import matplotlib.pyplot as plt

from common.evaluation_steps import evaluate_checkpoint, open_checkpoint
from common.experiment import work_dir
from common.run import prepare_data

run = open_checkpoint(checkpoint, overrides, "vad", output_dir)
data = prepare_data(run.config, work_dir(run.config), need_train=False)

# %% [markdown]
# ## Whole-file metrics of the enhanced output

# %%
enhanced, result = evaluate_checkpoint(run, data)

# %% [markdown]
# ## Speech-aware evaluation: noisy vs enhanced vs VAD-gated
# `speech_*` metrics use the speech regions only; `residual_db` is the level left in the pauses
# (lower is quieter).

# %%
from common.config import GateConfig
from common.enhance import load_enhancer
from common.speech_aware import evaluate_speech_aware, format_speech_aware_table

enhancer = load_enhancer(run.ckpt, device=run.env.device)
speech_aware = evaluate_speech_aware(data.test, enhancer.enhance, GateConfig(floor_db=vad_floor_db))
print(format_speech_aware_table(speech_aware.summary))

# %% [markdown]
# ## The VAD timeline over the spectrogram

# %%
from common.audio import SAMPLE_RATE
from common.plots import plot_vad
from common.vad import detect_speech
from common.vad_gate import apply_vad_gate, gate_gain

example = enhanced.items[0]
vad = detect_speech(example.noisy, SAMPLE_RATE)
gated, _ = apply_vad_gate(example.enhanced, SAMPLE_RATE, GateConfig(floor_db=vad_floor_db), vad=vad)
plot_vad(
    {"noisy": example.noisy, "enhanced": example.enhanced, "VAD-gated": gated},
    vad,
    gain=gate_gain(vad, GateConfig(floor_db=vad_floor_db)),
    title=example.name,
    path=run.out_dir / "vad_timeline.png",
)
plt.show()
print(f"speech fraction: {vad.speech_fraction:.2f}")

# %% [markdown]
# ## Summary

# %%
import json

from common.evaluation_steps import write_evaluation_summary

summary_path = write_evaluation_summary(run, data, result, enhanced, globals().get("BUILD_INFO"))
_ = (run.out_dir / "speech_aware.json").write_text(
    json.dumps(speech_aware.summary, indent=2, default=float)
)
