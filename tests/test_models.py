"""Models: shapes for any length, parameter budgets, configs, causality and compute of `lite`."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from common.audio import stft
from common.config import StftConfig
from common.errors import UserError
from common.models import build_model, count_parameters, model_config_dict, model_names
from common.models.transformer import transformer_attention_maps

SEED_PARAMS = {"crn": 1_811_009, "transformer": 2_451_457, "dpt": 904_705}
LITE_MAX_PARAMS = 350_000
LITE_MAX_GMACS_PER_SECOND = 0.3


def noisy_spec(n_samples: int, cfg: StftConfig = StftConfig(), batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(n_samples)
    return stft(0.1 * torch.randn(batch, n_samples, generator=gen), cfg)


def test_registry_lists_the_models() -> None:
    assert set(model_names()) == {"crn", "transformer", "dpt", "lite", "lite-sb"}


@pytest.mark.parametrize("name", sorted(SEED_PARAMS))
def test_seed_models_match_their_parameter_counts(name: str) -> None:
    assert count_parameters(build_model(name)) == pytest.approx(SEED_PARAMS[name], rel=0.02)


def test_lite_fits_its_parameter_budget() -> None:
    assert count_parameters(build_model("lite")) <= LITE_MAX_PARAMS
    assert count_parameters(build_model("lite", causal=False)) <= LITE_MAX_PARAMS


# Odd frame counts (16001 samples -> T = 63, 7681 -> 31, 4097 -> 17); the seed models are slow
# on a CPU at full resolution, so they get shorter clips.
@pytest.mark.parametrize(
    ("name", "n_samples"), [("lite", 16001), ("crn", 7681), ("dpt", 7681), ("transformer", 4097)]
)
def test_output_is_a_finite_complex_spectrum_of_the_input_shape(name: str, n_samples: int) -> None:
    model = build_model(name).eval()
    spec = noisy_spec(n_samples, batch=2 if name == "lite" else 1)
    assert spec.shape[-1] % 2 == 1
    with torch.no_grad():
        out = model(spec)
    assert out.shape == spec.shape and out.is_complex()
    assert torch.isfinite(out.real).all() and torch.isfinite(out.imag).all()
    # All masks are bounded by 1 in magnitude: no model can amplify a bin.
    assert (out.abs() <= spec.abs() * (1 + 1e-5) + 1e-6).all()


@pytest.mark.parametrize("name", ["crn", "transformer", "dpt", "lite"])
def test_models_follow_a_low_latency_stft_and_train(name: str) -> None:
    cfg = StftConfig(n_fft=128, hop_length=64)
    model = build_model(name, n_freq=cfg.n_freq).train()
    spec = noisy_spec(1601, cfg)
    out = model(spec)
    assert out.shape == spec.shape
    out.abs().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_a_spectrum_from_another_stft_is_refused() -> None:
    model = build_model("lite")
    with pytest.raises(UserError, match="n_freq=257"):
        model(noisy_spec(4000, StftConfig(n_fft=256, hop_length=128)))


def test_unknown_names_and_keys_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="crn, dpt, lite, lite-sb, transformer") as err:
        build_model("unet")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="widht"):
        build_model("lite", widht=32)


@pytest.mark.parametrize("name", ["crn", "transformer", "dpt", "lite"])
def test_config_round_trips_through_json_and_checkpoints(name: str, tmp_path) -> None:
    model = build_model(name, n_freq=65)
    config = json.loads(json.dumps(model_config_dict(model)))  # lists where tuples were
    rebuilt = build_model(model.name, **config)
    assert rebuilt.cfg == model.cfg
    path = tmp_path / "m.pt"
    torch.save({"config": model_config_dict(model), "state": model.state_dict()}, path)
    state = torch.load(path, weights_only=True)
    build_model(name, **state["config"]).load_state_dict(state["state"])


def test_transformer_attention_maps_cover_every_layer_and_head() -> None:
    model = build_model("transformer").eval()
    spec = noisy_spec(4097, batch=2)
    maps = transformer_attention_maps(model, spec, index=1)
    t = spec.shape[-1]
    assert maps.shape == (model.cfg.n_layers, model.cfg.n_heads, t, t)
    assert torch.allclose(maps.sum(-1), torch.ones(()), atol=1e-5)


def _past_changes(model: torch.nn.Module, split: int) -> float:
    spec = noisy_spec(8001, batch=1)
    later = spec.clone()
    later[..., split:] = later[..., split:] * 3 + 0.5
    with torch.no_grad():
        return float((model(spec)[..., :split] - model(later)[..., :split]).abs().max())


def test_causal_lite_ignores_the_future() -> None:
    assert _past_changes(build_model("lite").eval(), split=20) == 0.0


def test_noncausal_lite_does_look_ahead() -> None:
    # The same probe detects look-ahead when there is some, so the test above can fail.
    assert _past_changes(build_model("lite", causal=False).eval(), split=20) > 1e-4


def assert_chunks_exactly(model: torch.nn.Module) -> None:
    """Frame runs of any length, the state carried between them, equal one pass."""
    spec = noisy_spec(8001, batch=2)
    with torch.no_grad():
        whole = model(spec)
        state, parts = None, []
        for lo, hi in [(0, 1), (1, 8), (8, 9), (9, spec.shape[-1])]:
            out, state = model.forward_stateful(spec[..., lo:hi], state)
            parts.append(out)
    assert torch.allclose(torch.cat(parts, dim=-1), whole, atol=1e-5)


def test_lite_runs_in_chunks_exactly_as_in_one_pass() -> None:
    assert_chunks_exactly(build_model("lite").eval())


def test_noncausal_lite_refuses_frame_by_frame_use() -> None:
    model = build_model("lite", causal=False)
    with pytest.raises(UserError, match="causal=True"):
        model.forward_stateful(noisy_spec(4000), None)


def test_lite_compute_per_second_of_audio_is_within_budget() -> None:
    cfg = StftConfig()
    model = build_model("lite").eval()
    seconds = 1.0
    spec = noisy_spec(int(seconds * cfg.sample_rate), cfg, batch=1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(spec)
    macs_per_second = counter.get_total_flops() / 2 / seconds
    # The recurrent and attention layers must be visible to the counter, not only the convs.
    assert counter.get_flop_counts()["Global"].get(torch.ops.aten.mm, 0) > 0
    assert 0 < macs_per_second <= LITE_MAX_GMACS_PER_SECOND * 1e9
