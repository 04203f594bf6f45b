"""`lite-sb`, `lite` with sub-band time GRUs (common.models.subband): more parameters at the
same MACs, causal, chunked = one pass, streaming (PyTorch and ONNX) = offline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from test_models import (
    LITE_MAX_GMACS_PER_SECOND,
    LITE_MAX_PARAMS,
    _past_changes,
    assert_chunks_exactly,
    noisy_spec,
)
from test_streaming import synthetic_speech
from torch.utils.flop_counter import FlopCounterMode
from train_helpers import save_model_checkpoint

from common.audio import StftConfig
from common.errors import UserError
from common.models import build_model, count_parameters
from common.models.subband import band_group_edges
from common.streaming import StreamingEnhancer

GROUPS = 4


def grouped_lite(**overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("lite-sb", band_groups=GROUPS, **overrides)
    for m in model.modules():  # non-trivial normalisation statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _macs(model: torch.nn.Module) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(noisy_spec(16000, batch=1))
    return counter.get_total_flops() / 2


def test_band_groups_cover_every_band_once() -> None:
    for n_bands in (13, 33):
        for groups in range(1, 6):
            edges = band_group_edges(n_bands, groups)
            assert edges[0] == 0 and edges[-1] == n_bands and len(edges) == groups + 1
            assert all(hi > lo for lo, hi in zip(edges, edges[1:]))
    with pytest.raises(UserError, match="band_groups"):
        build_model("lite-sb", band_groups=0)


def test_groups_add_parameters_not_compute() -> None:
    shared, grouped = build_model("lite").eval(), grouped_lite()
    assert count_parameters(grouped) > count_parameters(shared)
    assert count_parameters(grouped) <= LITE_MAX_PARAMS
    assert _macs(grouped) == pytest.approx(_macs(shared), rel=0.01)
    assert _macs(grouped) <= LITE_MAX_GMACS_PER_SECOND * 1e9


def test_grouped_lite_is_causal_and_chunks_exactly() -> None:
    model = grouped_lite()
    assert _past_changes(model, split=20) == 0.0
    assert_chunks_exactly(model)


def test_grouped_lite_needs_causal() -> None:
    with pytest.raises(UserError, match="causal=True"):
        build_model("lite-sb", causal=False)


def test_grouped_lite_streams_through_the_onnx_export(tmp_path) -> None:
    from common.onnx_stream import load_onnx_stream

    cfg = StftConfig()
    model = grouped_lite()
    ckpt = save_model_checkpoint(tmp_path / "lite.pt", model, stft=cfg)
    out = tmp_path / "stream.onnx"
    cmd = ["-m", "common", "export", "--ckpt", str(ckpt), "--out", str(out), "--streaming"]
    done = subprocess.run([sys.executable, *cmd], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wav = synthetic_speech(1.0)
    expected = StreamingEnhancer(model, cfg).process_signal(wav)
    np.testing.assert_allclose(load_onnx_stream(out).process_signal(wav), expected, atol=1e-5)
