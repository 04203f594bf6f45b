# %% [markdown]
# # Runs compared: which model is better, by how much, and how it sounds
#
# Built by `make report` (`notebooks_src/report.py`, executed here with papermill and rendered to
# `results/report.html`) over every run pulled from Kaggle into `results/` and the local run
# folders given with `RUNS=...`. **Every number on this page is computed from the per-file scores
# the runs wrote themselves** (`eval_per_file.csv`: PESQ-wb, STOI, ESTOI and SI-SDR measured on
# waveforms): means come with a 95% bootstrap interval over the test files, and two systems are
# compared file by file on the *same* files. A difference whose interval contains zero is not
# evidence of a difference. A run with missing, broken or edited files is named with the reason
# and left out of the comparisons.

# %% tags=["parameters"]
results_dir = "results"  # pulled Kaggle runs (results/registry.json); "" for none
run_dirs = []  # local run folders, e.g. ["runs/lite-v2"] (RUNS=... in make report)
baseline = "auto"  # the run compared with the others: a label, or "auto" = the previous best

# %%
from common.report.compare import metrics_of
from common.report.runs import load_runs

runs = load_runs(results_dir, run_dirs)
usable = [r for r in runs if r.ok]
metrics = metrics_of(usable)
print(
    f"{len(runs)} run(s) found: {len(usable)} compared, {len(runs) - len(usable)} left out; "
    f"metrics: {', '.join(metrics)}"
)

# %% [markdown]
# ## 1. Leaderboard
# One row per run, best first by PESQ-wb: recipe, model, size, compute (multiply-accumulates per
# second of audio), training budget and device, optimizer steps, and each metric's mean over the
# test files with its 95% bootstrap interval. The grey rows are the noisy input on the same files
# (one per set of test files: runs on different sets are not comparable row to row). ⚠ marks a run
# with files changed after the pull.

# %%
from IPython.display import HTML, display

from common.report.tables import leaderboard_html, left_out_html

display(HTML(leaderboard_html(runs, metrics) + left_out_html(runs)))

# %% [markdown]
# ## 2. Paired comparison
# Each cell is the mean per-file difference with its 95% interval and the share of files that
# improved. Green: the interval lies above zero (better on these files); red: below. First every
# run against its own noisy input, then every run against the baseline run; runs evaluated on
# other files (or other crops of them) are not paired, and the table says so.

# %%
from common.report.compare import choose_baseline, compare_to_noisy, compare_to_run
from common.report.tables import comparison_html

display(HTML("<h4>Enhanced − noisy input (same files)</h4>"))
display(HTML(comparison_html(compare_to_noisy(runs, metrics), metrics)))
base = choose_baseline(runs, baseline)
if base is None:
    print("one usable run: no baseline run to compare with")
else:
    how = "chosen" if baseline != "auto" else "the previous best: best PESQ-wb except the newest"
    display(HTML(f"<h4>Each run − {base.label} ({how})</h4>"))
    display(HTML(comparison_html(compare_to_run(base, runs, metrics), metrics)))

# %% [markdown]
# ## 3. Training curves
# Every run's training loss (solid) and validation loss (dashed), validation SI-SDR and learning
# rate, against optimizer steps (top) and training time (bottom); one colour per run.

# %%
import matplotlib.pyplot as plt

from common.report.figures import plot_curves

fig = plot_curves(runs)
plt.show()
no_history = [r.label for r in usable if not r.history]
if no_history:
    print(f"no training history: {', '.join(no_history)}")

# %% [markdown]
# ## 4. Per-file distributions
# One box per run (the enhanced output's per-file scores; triangle: mean) beside the noisy input.
# Two runs with the same mean can differ in how often they fail badly.

# %%
from common.report.figures import plot_distributions

fig = plot_distributions(runs, metrics)
plt.show()

# %% [markdown]
# ## 5. What differs between the configurations
# Only the fields that differ between the runs' stored configurations, side by side.

# %%
from common.report.tables import config_html

display(HTML(config_html(runs)))

# %% [markdown]
# ## 6. Listening
# The same test files for every run (a fixed choice by file name, made by each run when it saved
# its examples): noisy input, each run's output and the clean reference, with their spectrograms
# on one colour scale (the first seconds of each file). Beside each player: that file's PESQ-wb
# and STOI (over the whole evaluated file).

# %%
from common.report.figures import plot_listening
from common.report.listening import (
    examples_note,
    listening_files,
    listening_scores,
    listening_signals,
    players_html,
)

files = listening_files(runs)[:6]
if not files:
    print("no example audio shared by the compared runs")
for name in files:
    signals = listening_signals(runs, name)
    scores = listening_scores(runs, name, metrics)
    display(HTML(f"<h4>{name}</h4>" + players_html(signals, scores)))
    fig = plot_listening(signals, name)
    plt.show()
if examples_note(runs):
    print(examples_note(runs))

# %% [markdown]
# ## 7. Provenance
# Where each run's files came from: the Kaggle kernel and version (linked) or the local folder,
# the git commit of the sources, when it was pulled, and the sha256 of every pulled file, with a
# mark on any file changed since the pull.

# %%
from common.report.tables import provenance_html

display(HTML(provenance_html(runs)))
