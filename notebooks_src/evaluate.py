# %% [markdown]
# # Evaluate a checkpoint from an earlier run, without training
#
# **What this notebook does.** It takes a checkpoint written by one of the training notebooks
# (`best.pt`, attached through `kernel_sources` on Kaggle or given as a path), enhances the test
# pairs and scores them: PESQ-wb, STOI, ESTOI and SI-SDR for the noisy input, the enhanced output
# and the difference.
#
# **The lesson from the team's history it guards against.** R3 v3 trained for 25 epochs and then
# crashed in evaluation (a `torch.load` default had changed); the fix was pushed as a new version
# that *retrained from scratch* and, worse, made the finished run's outputs unreachable. Evaluation
# never retrains here: it only reads the checkpoint (with `weights_only=True`, which the
# checkpoints are written for), and `make push-evaluate` pulls the previous outputs first.

# %% tags=["parameters"]
checkpoint = "auto"  # a best.pt / last.pt path; "auto": the newest best.pt under /kaggle/input
data_source = "kaggle"  # "kaggle", "synthetic", or a folder (archives, or noisy/ + clean/ pairs)
work_dir = "auto"
output_dir = "auto"
max_test_pairs = 0  # 0: all
eval_seconds = 0.0  # 0: whole test files
seed = 0
device = "auto"

# %% [markdown]
# ## The checkpoint
# What the checkpoint says about its run: the model it rebuilds, its size and how far it trained.

# %%
import matplotlib.pyplot as plt

from common.experiment import RunParams, checkpoint_overview, find_checkpoint, setup_environment

ckpt_path = find_checkpoint(checkpoint)
overview = checkpoint_overview(ckpt_path)
params = RunParams.from_namespace(overview["model"], globals())
env = setup_environment(params, training=False)
out_dir = params.resolved_output_dir()
out_dir.mkdir(parents=True, exist_ok=True)

# %%
from common.plots import plot_training_curves

if overview["history"]:
    plot_training_curves(overview["history"], out_dir / "training_curves.png")
    plt.show()

# %% [markdown]
# ## Test data
# Only the test archives are needed; the alignment guard still checks the pairs.

# %%
from common.experiment import alignment_report, load_experiment_data

data = load_experiment_data(params, need_train=False)
alignment = alignment_report(data, params)

# %% [markdown]
# ## Evaluation

# %%
from common.experiment import enhance_test_set, evaluate_enhanced

enhanced = enhance_test_set(ckpt_path, data.test, params, env.device, env.budget)
result = evaluate_enhanced(enhanced, out_dir)
plt.show()

# %% [markdown]
# ## Examples: listen and look

# %%
from common.experiment import show_examples

show_examples(enhanced, out_dir)

# %% [markdown]
# ## Summary

# %%
from common.experiment import write_run_summary

write_run_summary(
    params,
    params_count=overview["params"],
    train_summary={
        "epochs_done": overview["epoch"],
        "best_epoch": overview["best_epoch"],
        "train_seconds": overview["train_seconds"],
        "stop_reason": "evaluation only",
    },
    metrics=result.summary,
    env=env,
    data=data,
    build_info=globals().get("BUILD_INFO"),
    timings={"enhance_seconds": enhanced.seconds, "checkpoint": str(ckpt_path)},
)
