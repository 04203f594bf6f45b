from __future__ import annotations

import math

import numpy as np
import pytest

from common.env import EnvInfo, GpuInfo, arch_supported, install_missing, select_device
from common.plots import plot_metric_distributions, plot_spectrograms, plot_training_curves

KAGGLE_ARCHS = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "compute_90"]


@pytest.mark.parametrize(
    "cap,archs,ok",
    [
        ((7, 5), KAGGLE_ARCHS, True),  # T4
        ((6, 0), KAGGLE_ARCHS, False),  # P100 after Pascal was dropped: the team's crash
        ((8, 9), ["sm_80", "sm_86"], True),  # same major, newer minor runs sm_86 code
        ((10, 0), ["sm_90", "compute_90"], True),  # PTX is compiled for newer GPUs
        ((10, 0), ["sm_90"], False),
    ],
)
def test_arch_support_rules(cap, archs, ok):
    assert arch_supported(cap, archs) is ok


def test_unsupported_gpu_falls_back_to_cpu_with_one_warning():
    env = EnvInfo(
        "3.11", "2.x", "12.4", ["sm_75"], [GpuInfo(0, "Tesla P100-PCIE-16GB", (6, 0), 16.0, False)]
    )
    with pytest.warns(UserWarning, match="P100.*not supported.*T4"):
        assert select_device("auto", env).type == "cpu"


def test_cpu_is_chosen_without_gpu():
    env = EnvInfo("3.11", "2.x", None, [], [])
    assert select_device("auto", env).type == "cpu"


def test_install_missing_skips_present_packages():
    assert install_missing({"numpy": "numpy"}) == []


def test_plots_render(tmp_path):
    history = [
        {
            "epoch": i + 1,
            "train_loss": 1 / (i + 1),
            "val_loss": 1.2 / (i + 1),
            "val_si_sdr": i,
            "lr": 1e-3,
        }
        for i in range(3)
    ]
    plot_training_curves(history, tmp_path / "curves.png")
    rng = np.random.default_rng(0)
    clean = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    noisy = clean + 0.1 * rng.standard_normal(16000).astype(np.float32)
    plot_spectrograms({"noisy": noisy, "clean": clean}, path=tmp_path / "spec.png")
    rows = [
        {"noisy_pesq": 1.2, "enhanced_pesq": 2.0, "noisy_stoi": 0.7, "enhanced_stoi": math.nan}
    ] * 4
    plot_metric_distributions(rows, tmp_path / "dist.png")
    for name in ("curves.png", "spec.png", "dist.png"):
        assert (tmp_path / name).stat().st_size > 5000
