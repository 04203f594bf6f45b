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
data_source = "kaggle"  # "kaggle", "synthetic", or a folder (archives, or noisy/ + clean/ pairs)
work_dir = "auto"
output_dir = "auto"
max_test_pairs = 20  # 0: all
eval_seconds = 0.0  # 0: whole test files
seed = 0
device = "auto"
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

from common.experiment import (
    RunParams,
    alignment_report,
    checkpoint_overview,
    find_checkpoint,
    load_experiment_data,
    setup_environment,
)

ckpt_path = find_checkpoint(checkpoint)
overview = checkpoint_overview(ckpt_path)
params = RunParams.from_namespace(overview["model"], globals())
env = setup_environment(params, training=False)
out_dir = params.resolved_output_dir()
out_dir.mkdir(parents=True, exist_ok=True)
data = load_experiment_data(params, need_train=False)
alignment = alignment_report(data, params)

# %% [markdown]
# ## Whole-file metrics of the enhanced output

# %%
from common.experiment import enhance_test_set, evaluate_enhanced

enhanced = enhance_test_set(ckpt_path, data.test, params, env.device, env.budget)
result = evaluate_enhanced(enhanced, out_dir)

# %% [markdown]
# ## Speech-aware evaluation: noisy vs enhanced vs VAD-gated
# `speech_*` metrics use the speech regions only; `residual_db` is the level left in the pauses
# (lower is quieter).

# %%
from common.enhance import load_enhancer
from common.vad import GateConfig, evaluate_speech_aware, format_speech_aware_table

enhancer = load_enhancer(ckpt_path, device=env.device)
speech_aware = evaluate_speech_aware(data.test, enhancer.enhance, GateConfig(floor_db=vad_floor_db))
print(format_speech_aware_table(speech_aware.summary))

# %% [markdown]
# ## The VAD timeline over the spectrogram

# %%
from common.audio import SAMPLE_RATE
from common.vad import apply_vad_gate, detect_speech, gate_gain, plot_vad

example = enhanced.items[0]
vad = detect_speech(example.noisy, SAMPLE_RATE)
gated, _ = apply_vad_gate(example.enhanced, SAMPLE_RATE, GateConfig(floor_db=vad_floor_db), vad=vad)
plot_vad(
    {"noisy": example.noisy, "enhanced": example.enhanced, "VAD-gated": gated},
    vad,
    gain=gate_gain(vad, GateConfig(floor_db=vad_floor_db)),
    title=example.name,
    path=out_dir / "vad_timeline.png",
)
plt.show()
print(f"speech fraction: {vad.speech_fraction:.2f}")

# %% [markdown]
# ## Summary

# %%
import json

from common.experiment import write_run_summary

summary_path = write_run_summary(
    params,
    params_count=overview["params"],
    train_summary={
        "epochs_done": overview["epoch"],
        "best_epoch": overview["best_epoch"],
        "stop_reason": "evaluation only",
    },
    metrics=result.summary,
    env=env,
    data=data,
    build_info=globals().get("BUILD_INFO"),
    timings={"enhance_seconds": enhanced.seconds, "checkpoint": str(ckpt_path)},
)
(out_dir / "speech_aware.json").write_text(
    json.dumps(speech_aware.summary, indent=2, default=float)
)
