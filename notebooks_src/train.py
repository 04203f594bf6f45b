# %% [markdown]
# # Train a recipe
#
# The builder replaces this cell with the recipe's title and what its experiment tests
# (`recipes/NAME.toml`); one Kaggle notebook is built from this source per recipe.

# %% tags=["parameters"]
recipe = "lite"  # recipes/<name>.toml: the whole run configuration, printed below
overrides = {}  # fields to change by dotted name, e.g. {"train.epochs": 2, "data.source": "synthetic"}
max_minutes = 690.0  # the whole notebook's budget, from its first cell (Kaggle stops at 720)
resume_checkpoint = ""  # e.g. /kaggle/input/<previous run>/last.pt
output_dir = "auto"  # /kaggle/working on Kaggle, outputs/<recipe> elsewhere
nproc = "auto"  # data-parallel processes; "auto" = one per usable GPU, 1 forces one device

# %% [markdown]
# ## The run's configuration
# The recipe with this notebook's overrides: data, model, STFT, loss, training and evaluation.
# `python -m common train --recipe NAME` trains exactly this on the command line, through the
# same code; the configuration is stored whole in every checkpoint and in `summary.json`.

# %%
from common.experiment import Session, notebook_config, show_config

config = notebook_config(recipe, overrides)
session = Session(recipe, output_dir, max_minutes, resume_checkpoint, nproc)
out_dir = session.out_dir()
show_config(config)

# %% [markdown]
# ## Environment
# The GPU's compute capability is checked against the kernels this torch build ships (the team
# lost runs to a P100 the build could not drive); on Kaggle a training run that would fall back
# to the CPU stops here instead. With two GPUs (Kaggle's T4 x2) training runs data-parallel.
# The time budget counts from the notebook's first cell.

# %%
import matplotlib.pyplot as plt

from common.experiment import setup_environment

env = setup_environment(config, session)

# %% [markdown]
# ## Data
# A mixing recipe (`data.source = "mix"`) draws every training example afresh. With a speech +
# noise dataset attached (your own, `make upload-data`), from its speech and noise recordings;
# otherwise from the team's public paired dataset, remixed: each pair is taken apart once
# (`noisy = g * clean + residual`, `g` fitted by least squares), pairs that are misaligned or
# whose residual still carries speech are left out and counted below, and each example is a
# crop of one utterance with another pair's residual (or babble) at a random SNR and level.
# Validation holds out whole speakers; the dataset's own test pairs stay the test set.
# Fixed-pair recipes (`data.source = "kaggle"`) extract the archives once and pair them by
# name; the alignment guard then measures the noisy/clean correlation of the crops the model
# will see: misaligned crops, the team's costliest bug, stop the run here.

# %%
from common.experiment import work_dir
from common.run import prepare_data

data = prepare_data(config, work_dir(config))

# %% [markdown]
# ## Model
# One row per block: its output shape for one second of audio and its parameters, then the
# multiply-accumulates per second of audio (the compute a real-time device must afford). This is
# the model the next cell trains, initialised from `train.seed`.

# %%
from common.models import count_parameters
from common.run import build_run_model
from common.training_steps import show_model

model = build_run_model(config)
n_params = count_parameters(model)
gmacs_per_s = show_model(model, config)

# %% [markdown]
# ## Training
# The line printed first says how this recipe trains (optimiser, schedule, stopping rules and
# budget), generated from its `[train]` settings. Checkpoints are written atomically (`last.pt`,
# `best.pt`, periodic `epoch_NNN.pt`) and a run resumes exactly from `resume_checkpoint`.

# %%
from common.plots import plot_training_curves
from common.training_steps import run_training

config, trained = run_training(config, data, env, session, model)
plot_training_curves(trained.history, out_dir / "training_curves.png")
plt.show()

# %% [markdown]
# ## Evaluation on the test pairs
# The best checkpoint enhances every test file; PESQ-wb, STOI, ESTOI and SI-SDR are computed
# from the waveforms (never estimated) for the noisy input and the enhanced output, and DNSMOS
# (SIG, BAK, OVRL, P.808: listeners' scores predicted without the clean reference, the measure
# for real recordings; `evaluate.dnsmos = false` skips it).

# %%
from common.experiment import enhance_test_set, evaluate_enhanced

enhanced = enhance_test_set(
    trained.best, data.test, config.evaluate, env.device, env.budget, config.train.seed
)
result = evaluate_enhanced(enhanced, out_dir, config.evaluate.dnsmos)
plt.show()

# %% [markdown]
# ## Examples: listen and look
# Spectrograms of noisy, enhanced and clean on one colour scale, with audio players. The same
# few test files (a fixed choice by name) are saved as audio in `examples/` for the report.

# %%
from common.experiment import show_examples

show_examples(enhanced, out_dir)

# %% [markdown]
# ## Attention maps
# For models built on `nn.MultiheadAttention` (`transformer`, `dpt`): per-head weights of the
# trained model on one test clip. Frequency layers attend across bands, time layers across
# frames; a near-uniform map is a model that has not learnt where to look.

# %%
from common.training_steps import show_attention

n_maps = show_attention(trained.model, enhanced.items[0].noisy, config, out_dir)

# %% [markdown]
# ## Summary
# `summary.json` (with `eval_per_file.csv`, `history.json` and `examples/`) is what `make report`
# reads. The headline: each metric's mean for the noisy input and the enhanced output with 95%
# bootstrap intervals over the test files, and their paired difference.

# %%
from common.experiment import show_headline, write_run_summary

summary_path = write_run_summary(
    config,
    session,
    params_count=n_params,
    train_summary=trained.summary,
    metrics=result.summary,
    env=env,
    data=data,
    build_info=globals().get("BUILD_INFO"),
    timings={"enhance_seconds": enhanced.seconds},
    gmacs_per_s=gmacs_per_s,
)
show_headline(result.rows)
