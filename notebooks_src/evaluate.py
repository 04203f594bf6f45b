# %% [markdown]
# # Evaluate a checkpoint from an earlier run, without training
#
# **What this notebook does.** It takes a checkpoint written by one of the training notebooks
# (`best.pt`, attached through `kernel_sources` on Kaggle or given as a path), enhances the test
# pairs and scores them: PESQ-wb, STOI, ESTOI, SI-SDR and DNSMOS (SIG, BAK, OVRL, P.808, which
# need no clean reference) for the noisy input, the enhanced output and the difference.
#
# **The lesson from the team's history it guards against.** R3 v3 trained for 25 epochs and then
# crashed in evaluation (a `torch.load` default had changed); the fix was pushed as a new version
# that *retrained from scratch* and, worse, made the finished run's outputs unreachable. Evaluation
# never retrains here: it only reads the checkpoint (with `weights_only=True`, which the
# checkpoints are written for), and `make push-evaluate` pulls the previous outputs first.

# %% tags=["parameters"]
checkpoint = "auto"  # a best.pt / last.pt path; "auto": the newest best.pt under /kaggle/input
overrides = {}  # changes to the run's configuration, e.g. {"data.source": "synthetic", "data.max_test_pairs": 20}
output_dir = "auto"  # /kaggle/working on Kaggle, outputs/evaluate elsewhere

# %% [markdown]
# ## The checkpoint
# What the checkpoint says about its run: the model it rebuilds, its size and how far it trained.

# %%
import matplotlib.pyplot as plt

from common.evaluation_steps import open_checkpoint
from common.plots import plot_training_curves

# The configuration the checkpoint was trained with (test data included), with the overrides.
run = open_checkpoint(checkpoint, overrides, "evaluate", output_dir)
if run.overview["history"]:
    plot_training_curves(run.overview["history"], run.out_dir / "training_curves.png")
    plt.show()

# %% [markdown]
# ## Test data
# Only the test archives are needed; the alignment guard still checks the pairs.

# %%
from common.experiment import work_dir
from common.run import prepare_data

data = prepare_data(run.config, work_dir(run.config), need_train=False)

# %% [markdown]
# ## Evaluation

# %%
from common.evaluation_steps import evaluate_checkpoint

enhanced, result = evaluate_checkpoint(run, data)
plt.show()

# %% [markdown]
# ## Examples: listen and look

# %%
from common.experiment import show_examples

show_examples(enhanced, run.out_dir)

# %% [markdown]
# ## Summary
# `summary.json` for `make report`, and the headline: noisy and enhanced means with 95% bootstrap
# intervals over the test files, and their paired difference.

# %%
from common.evaluation_steps import write_evaluation_summary
from common.experiment import show_headline

summary_path = write_evaluation_summary(run, data, result, enhanced, globals().get("BUILD_INFO"))
show_headline(result.rows)
