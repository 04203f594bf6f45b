"""The report's figures: training curves of every run, per-file score distributions, and the
spectrograms of one listening example."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.metric_names import metric_label
from common.report.compare import file_sets
from common.report.runs import Run


def _colours(n: int) -> list[Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def plot_curves(runs: Sequence[Run]) -> Any:
    """Loss, validation SI-SDR and learning rate of every run, against steps and against time."""
    import matplotlib.pyplot as plt

    with_history = [r for r in runs if r.ok and r.history]
    panels = [("loss (solid: train, dashed: validation)", ("train_loss", "val_loss")),
              ("validation SI-SDR (dB)", ("val_si_sdr",)), ("learning rate", ("lr",))]  # fmt: skip
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), squeeze=False)
    for run, colour in zip(with_history, _colours(len(with_history))):
        h = run.history
        steps = [e.get("step", i + 1) for i, e in enumerate(h)]
        minutes = [e.get("elapsed_seconds", math.nan) / 60 for e in h]
        for row, xs in enumerate((steps, minutes)):
            for col, (_, keys) in enumerate(panels):
                ax = axes[row][col]
                for key, style in zip(keys, ("-", "--")):
                    ys = [e.get(key, math.nan) for e in h]
                    ys = [y if isinstance(y, (int, float)) else math.nan for y in ys]
                    if any(math.isfinite(y) for y in ys):
                        label = run.label if key != "val_loss" or len(keys) == 1 else None
                        ax.plot(xs, ys, style, color=colour, marker=".", ms=3, label=label)
    for col, (title, _) in enumerate(panels):
        axes[0][col].set_title(title, fontsize=10)
        axes[0][col].set_xlabel("optimizer steps")
        axes[1][col].set_xlabel("training time (min)")
        if col == 2:
            for row in (0, 1):
                axes[row][col].set_yscale("log")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def plot_distributions(runs: Sequence[Run], metrics: Sequence[str]) -> Any:
    """Per metric, a box per run of its per-file enhanced scores, and the noisy input's per set."""
    import matplotlib.pyplot as plt

    usable = [r for r in runs if r.ok]
    sets = file_sets(runs)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(3.4, 0.9 * (len(usable) + 2)) * len(metrics) / 1.6, 4.2),
        squeeze=False,
    )  # fmt: skip
    noisy_runs = {sets[r.label]: r for r in reversed(usable)}
    for ax, m in zip(axes[0], metrics):
        data, labels, colours = [], [], []
        for s, r in sorted(noisy_runs.items()):
            data.append([v for v in r.values("noisy", m).values() if isinstance(v, float)])
            labels.append(f"noisy ({s})" if len(noisy_runs) > 1 else "noisy")
            colours.append("lightgrey")
        for r, c in zip(usable, _colours(len(usable))):
            data.append([v for v in r.values("enhanced", m).values() if isinstance(v, float)])
            labels.append(r.label)
            colours.append(c)
        parts = ax.boxplot(data, patch_artist=True, showmeans=True, widths=0.6)
        for patch, colour in zip(parts["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        ax.set_title(metric_label(m), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_listening(signals: dict[str, Path], title: str) -> Any:
    """Spectrograms of noisy / each run / clean on one colour scale."""
    from common.audio import load_audio
    from common.plots import plot_spectrograms

    return plot_spectrograms({k: load_audio(p) for k, p in signals.items()}, title=title)
