"""Export: ONNX fp32/int8 reproduce PyTorch through the one waveform path, the ONNX back-end needs
no model code and chunks long audio, the export command, and the benchmark table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_python
from train_helpers import save_model_checkpoint

from common.audio import list_audio, load_audio
from common.enhance import Enhancer, TorchBackend, load_model
from common.errors import UserError
from common.export import export_onnx, quantize_torch_int8
from common.models import build_model
from common.onnx_backend import OnnxBackend, load_onnx_enhancer


def _snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


@pytest.fixture(scope="module")
def lite_ckpt(tmp_path_factory) -> Path:
    """A `lite` checkpoint with random weights in the trainer's format."""
    torch.manual_seed(0)
    model = build_model("lite")
    return save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "lite.pt", model)


@pytest.fixture(scope="module")
def exported(lite_ckpt: Path, tmp_path_factory) -> dict[str, Path]:
    model, cfg = load_model(lite_ckpt)
    out = tmp_path_factory.mktemp("onnx")
    return {
        "fp32": export_onnx(model, cfg, out / "lite.onnx"),
        "int8": export_onnx(model, cfg, out / "lite_int8.onnx", int8=True),
    }


def test_onnx_fp32_reproduces_pytorch_on_a_real_file(lite_ckpt, exported, shared_data):
    model, cfg = load_model(lite_ckpt)
    noisy = load_audio(list_audio(shared_data / "noisy_only")[0])
    expected = Enhancer(TorchBackend(model, cfg)).enhance(noisy, 16000)
    onnx = load_onnx_enhancer(exported["fp32"])
    got = onnx.enhance(noisy, 16000)
    assert got.shape == noisy.shape
    assert np.abs(got - expected).max() < 1e-4
    assert onnx.model_name == "lite" and onnx.backend.precision == "fp32"
    assert onnx.stft == cfg and onnx.backend.causal  # the stream's padding, as in PyTorch
    assert json.loads(onnx.backend.metadata["model_config"])["n_freq"] == 257


def test_onnx_int8_is_smaller_and_close_to_fp32(exported, shared_data):
    noisy = load_audio(list_audio(shared_data / "noisy_only")[0])[: 5 * 16000]
    fp32 = load_onnx_enhancer(exported["fp32"]).enhance(noisy, 16000)
    int8 = load_onnx_enhancer(exported["int8"])
    assert int8.backend.precision == "int8"
    assert exported["int8"].stat().st_size < exported["fp32"].stat().st_size
    assert _snr_db(fp32, int8.enhance(noisy, 16000)) > 25


def test_torch_dynamic_int8_quantizes_linear_and_gru(lite_ckpt):
    from scripts.bench_export import torch_model_bytes

    model, cfg = load_model(lite_ckpt)
    q = quantize_torch_int8(model)
    kinds = {type(m).__module__ for m in q.modules()}
    assert any("quantized" in k for k in kinds)
    assert torch_model_bytes(q) < 0.7 * torch_model_bytes(model)
    wav = (0.1 * np.random.default_rng(1).standard_normal(32000)).astype(np.float32)
    ref = Enhancer(TorchBackend(model, cfg)).enhance(wav, 16000)
    assert _snr_db(ref, Enhancer(TorchBackend(q, cfg)).enhance(wav, 16000)) > 20
    # The original model is left as it was (quantization works on a copy).
    assert not any("quantized" in type(m).__module__ for m in model.modules())


def test_onnx_enhancer_any_rate_and_very_short_input(exported):
    onnx = load_onnx_enhancer(exported["fp32"])
    rng = np.random.default_rng(2)
    for n, sr in ((44100, 44100), (100, 16000), (16000, 8000)):
        y = onnx.enhance((0.1 * rng.standard_normal(n)).astype(np.float32), sr)
        assert y.shape == (n,) and np.all(np.isfinite(y))


def test_onnx_enhance_runs_without_model_code(exported, shared_data, tmp_path):
    """What `enhance --onnx` relies on: no common.models / checkpoint code is imported."""
    noisy = list_audio(shared_data / "noisy_only")[0]
    out = tmp_path / "out.wav"
    code = f"""
import sys
for blocked in ("common.models", "common.checkpoint", "common.train"):
    sys.modules[blocked] = None  # any import of them raises ImportError
from common.audio import load_audio, write_audio
from common.onnx_backend import load_onnx_enhancer
wav = load_audio({str(noisy)!r})
write_audio({str(out)!r}, load_onnx_enhancer({str(exported["int8"])!r}).enhance(wav, 16000))
print(len(wav))
"""
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert len(load_audio(out)) == int(proc.stdout.strip())


def test_onnx_enhancer_refuses_bad_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="bad.onnx: not a loadable ONNX model"):
        OnnxBackend(bad)
    with pytest.raises(UserError, match="missing.onnx: ONNX model not found"):
        OnnxBackend(tmp_path / "missing.onnx")
    # A valid ONNX file without our metadata (no STFT config) is refused too.
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Identity(), (torch.zeros(1, 2),), str(plain), dynamo=False)
    with pytest.raises(UserError, match="no STFT metadata"):
        OnnxBackend(plain)


def test_export_command(lite_ckpt, tmp_path, capsys):
    from common.cli import main

    out = tmp_path / "cli" / "lite_int8.onnx"
    assert main(["export", "--ckpt", str(lite_ckpt), "--out", str(out), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "int8" in printed and "model lite" in printed
    assert OnnxBackend(out).precision == "int8"
    # A second export to the same path is refused unless --overwrite is given.
    assert main(["export", "--ckpt", str(lite_ckpt), "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert OnnxBackend(out).precision == "int8"
    assert main(["export", "--ckpt", str(lite_ckpt), "--out", str(out), "--overwrite"]) == 0
    assert OnnxBackend(out).precision == "fp32"
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary files left


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ckpt", "nope.pt", "--out", "m.onnx"], "nope.pt: checkpoint not found"),
        (["--ckpt", "x.pt", "--out", "model.bin"], "--out model.bin: use a file name ending"),
    ],
)
def test_export_command_errors_are_one_line(argv, message, capsys):
    from common.cli import main

    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_benchmark_table_on_a_real_pair(lite_ckpt, shared_data, tmp_path):
    from common.pairs import discover_pairs
    from scripts.bench_export import benchmark_variants, format_variant_table

    root = shared_data / "pairs" / "pesq_babble0db"
    pairs = discover_pairs(root / "noisy", root / "clean")
    results = benchmark_variants(lite_ckpt, pairs, tmp_path)
    names = [r.name for r in results]
    assert names == ["pytorch fp32", "pytorch int8 (dynamic)", "onnx fp32", "onnx int8"]
    fp32, _, onnx_fp32, _ = results
    assert fp32.vs_fp32 == {m: 0.0 for m in fp32.metrics}
    # ONNX fp32 is the same network: same scores to within rounding.
    assert abs(onnx_fp32.vs_fp32["pesq"]) < 0.01
    assert all(r.rtf > 0 and r.size_bytes > 0 for r in results)
    table = format_variant_table(results, len(pairs))
    assert table.count("| onnx int8 |") == 1


def test_onnx_and_vad_gate_through_enhance_path_on_real_noisy_files(
    exported, shared_data, tmp_path
):
    """What `enhance --onnx MODEL --vad IN OUT` runs: every noisy-only file, same length and rate."""
    import soundfile as sf

    from common.config import GateConfig
    from common.enhance_files import enhance_path
    from common.vad_gate import VadGatedEnhancer

    src = shared_data / "noisy_only"
    enhancer = VadGatedEnhancer(load_onnx_enhancer(exported["int8"]), GateConfig(floor_db=-20.0))
    assert enhancer.model_name == "lite"
    written = enhance_path(enhancer, src, tmp_path / "out", progress=False).written
    inputs = list_audio(src)
    assert len(written) == len(inputs) == 20
    for noisy, out in zip(inputs, written):
        a, b = sf.info(str(noisy)), sf.info(str(out))
        assert (a.frames, a.samplerate, a.channels) == (b.frames, b.samplerate, b.channels)


def test_stereo_stays_stereo(exported):
    from common.vad_gate import VadGatedEnhancer

    rng = np.random.default_rng(3)
    stereo = (0.1 * rng.standard_normal((16000, 2))).astype(np.float32)
    onnx = load_onnx_enhancer(exported["fp32"])
    out = VadGatedEnhancer(onnx).enhance(stereo, 16000)
    assert out.shape == stereo.shape
    assert np.allclose(onnx.enhance(stereo, 16000)[:, 1], onnx.enhance(stereo[:, 1], 16000))


def test_onnx_processes_long_audio_in_chunks(exported, monkeypatch):
    """`enhance --onnx` on a long file never hands the whole spectrum to onnxruntime."""
    seen = []
    call = OnnxBackend.__call__

    def recording(self, spec):
        seen.append(spec.shape[-1])
        return call(self, spec)

    monkeypatch.setattr(OnnxBackend, "__call__", recording)
    wav = (0.1 * np.random.default_rng(4).standard_normal(5 * 16000)).astype(np.float32)
    out = load_onnx_enhancer(exported["fp32"], chunk_seconds=1.0).enhance(wav, 16000)
    assert out.shape == wav.shape and np.all(np.isfinite(out))
    assert len(seen) > 4 and max(seen) <= 16000 // 256 + 3
