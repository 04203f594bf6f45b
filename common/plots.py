"""Figures the notebooks and reports show: training curves, spectrograms, metric distributions,
attention maps, the VAD timeline. Each function returns the figure and saves it when given a path."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch

from common.atomic import atomic_write
from common.audio import SAMPLE_RATE, stft
from common.config import StftConfig
from common.metric_names import METRIC_LABELS

if TYPE_CHECKING:
    from common.vad import VadResult

MAX_PANELS_PER_ROW = 4  # metric figures: PESQ/STOI/ESTOI/SI-SDR on one row, DNSMOS on the next


def _metric_axes(n: int, width: float, height: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """One panel per metric, at most MAX_PANELS_PER_ROW a row; unused panels hidden."""
    cols = max(1, min(n, MAX_PANELS_PER_ROW))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def save_figure(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    """Save `fig` at `path` when a path is given, whole or not at all (common.atomic; folders
    made); return it."""
    if path is not None:
        path = Path(path)
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return fig


def plot_training_curves(
    history: Sequence[Mapping[str, float]], path: str | Path | None = None
) -> plt.Figure:
    """Loss (train / validation), validation SI-SDR and learning rate per epoch."""
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    panels = [
        ("loss", [k for k in ("train_loss", "val_loss") if any(k in h for h in history)]),
        ("SI-SDR (dB)", [k for k in ("val_si_sdr",) if any(k in h for h in history)]),
        ("learning rate", [k for k in ("lr",) if any(k in h for h in history)]),
    ]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.2), squeeze=False
    )
    for ax, (title, keys) in zip(axes[0], panels):
        for k in keys:
            ax.plot(epochs, [h.get(k, np.nan) for h in history], marker="o", ms=3, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def db_spectrogram(wav: np.ndarray, cfg: StftConfig) -> np.ndarray:
    """|STFT| of `wav` in dB, (freq, frames)."""
    spec = stft(torch.as_tensor(np.asarray(wav, dtype=np.float32)), cfg).abs().numpy()
    return 20 * np.log10(spec + 1e-8)


def plot_spectrograms(
    signals: Mapping[str, np.ndarray],
    sr: int = 16000,
    cfg: StftConfig | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> plt.Figure:
    """Side-by-side log spectrograms on one colour scale, e.g. {"noisy", "enhanced", "clean"}."""
    cfg = cfg or StftConfig()
    specs = {k: db_spectrogram(v, cfg) for k, v in signals.items()}
    vmax = max(float(s.max()) for s in specs.values())
    # Constrained layout keeps the title clear of the panels' titles and the colour bar.
    fig, axes = plt.subplots(
        1,
        len(specs),
        figsize=(4.2 * len(specs), 3.2),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, (name, s) in zip(axes[0], specs.items()):
        dur = s.shape[1] * cfg.hop_length / sr
        im = ax.imshow(
            s,
            origin="lower",
            aspect="auto",
            vmin=vmax - 80,
            vmax=vmax,
            cmap="magma",
            extent=(0, dur, 0, sr / 2000),
        )
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (kHz)")
    fig.colorbar(im, ax=axes[0].tolist(), label="dB", shrink=0.9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_metric_distributions(
    rows: Sequence[Mapping[str, object]], path: str | Path | None = None
) -> plt.Figure:
    """Histograms of each metric for the noisy input and the enhanced output.

    `rows` are per-file results with keys like `noisy_pesq` and `enhanced_pesq`.
    """
    metrics = [m for m in METRIC_LABELS if any(f"noisy_{m}" in r for r in rows)]
    fig, axes = _metric_axes(len(metrics), 3.6, 3.0)
    for ax, m in zip(axes, metrics):
        for signal, colour in (("noisy", "tab:gray"), ("enhanced", "tab:blue")):
            vals = [float(r[f"{signal}_{m}"]) for r in rows if _is_finite(r.get(f"{signal}_{m}"))]
            if vals:
                ax.hist(
                    vals,
                    bins=min(20, max(5, len(vals) // 3)),
                    alpha=0.6,
                    color=colour,
                    label=signal,
                )
        ax.set_title(METRIC_LABELS[m])
        ax.grid(alpha=0.3)
    if metrics:
        axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _is_finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def plot_attention_maps(
    maps: Sequence[torch.Tensor | np.ndarray], title: str = "", path: str | Path | None = None
) -> plt.Figure:
    """Grid of attention maps: one row per layer, one column per head; each map is (query, key)."""
    maps = [np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m) for m in maps]
    maps = [m[0] if m.ndim == 4 else m for m in maps]  # drop a batch axis
    n_layers, n_heads = len(maps), maps[0].shape[0]
    fig, axes = plt.subplots(
        n_layers, n_heads, figsize=(2.4 * n_heads, 2.4 * n_layers), squeeze=False
    )
    for li, layer in enumerate(maps):
        for hi in range(n_heads):
            ax = axes[li][hi]
            ax.imshow(layer[hi], cmap="viridis", aspect="auto", origin="lower")
            ax.set_title(f"layer {li + 1} head {hi + 1}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_metric_table(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]], path: str | Path | None = None
) -> plt.Figure:
    """Bar chart of noisy vs enhanced mean per metric (error bars: std), from a metrics summary."""
    metrics = [m for m in METRIC_LABELS if m in summary.get("noisy", {})]
    fig, axes = _metric_axes(len(metrics), 2.6, 3.0)
    for ax, m in zip(axes, metrics):
        names = [s for s in ("noisy", "enhanced") if m in summary.get(s, {})]
        means = [summary[s][m]["mean"] for s in names]
        stds = [summary[s][m].get("std", 0.0) for s in names]
        ax.bar(names, means, yerr=stds, color=["tab:gray", "tab:blue"][: len(names)], capsize=4)
        ax.set_title(METRIC_LABELS[m])
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_vad(
    signals: Mapping[str, np.ndarray] | np.ndarray,
    vad: VadResult | None = None,
    sr: int = SAMPLE_RATE,
    gain: np.ndarray | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> plt.Figure:
    """Spectrogram of each signal with the VAD timeline on top: speech probability per frame,
    detected segments shaded, and the gate gain when given. The VAD is computed on the first
    signal when not given."""
    from common.vad import detect_speech

    if isinstance(signals, np.ndarray):
        signals = {"audio": signals}
    first = next(iter(signals.values()))
    vad = vad or detect_speech(first, sr)
    cfg = StftConfig(sample_rate=sr)
    fig, axes = plt.subplots(
        len(signals), 1, figsize=(10, 2.6 * len(signals)), squeeze=False, sharex=True
    )
    specs = {k: db_spectrogram(v, cfg) for k, v in signals.items()}
    vmax = max(float(s.max()) for s in specs.values())
    frame_t = (np.arange(len(vad.probs)) + 0.5) * vad.frame_seconds
    for ax, (name, spec) in zip(axes[:, 0], specs.items()):
        dur = len(signals[name]) / sr
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmax - 80,
            vmax=vmax,
            extent=(0, dur, 0, sr / 2000),
        )
        ax.set_ylabel(f"{name}\nkHz")
        top = ax.twinx()
        for i, (start, end) in enumerate(vad.segments_seconds()):
            top.plot(
                [start, end],
                [1.07, 1.07],
                color="lime",
                lw=5,
                solid_capstyle="butt",
                label="speech segment" if i == 0 else None,
            )
        top.plot(frame_t, vad.probs, color="cyan", lw=1.2, label="speech probability")
        if gain is not None:
            t = np.arange(len(gain)) / sr
            step = max(1, len(gain) // 4000)
            top.plot(t[::step], gain[::step], color="yellow", lw=1.0, ls="--", label="gate gain")
        top.set_ylim(0, 1.1)
        top.set_ylabel("p(speech)")
    axes[0, 0].set_title(
        title or f"VAD: {vad.speech_fraction:.0%} speech, {len(vad.segments)} segments"
    )
    axes[-1, 0].set_xlabel("time (s)")
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_figure(fig, path)
