"""Model registry: every model takes the noisy complex STFT (B, F, T) and returns the enhanced one.

`build_model("dpt", n_freq=65)` builds a model from its name and config overrides; the config
lives on `model.cfg` (a dataclass) and `model_config_dict(model)` gives it back as plain types for
checkpoints, so `build_model(model.name, **model_config_dict(model))` rebuilds the same model.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from common.errors import UserError
from common.models.crn import CRN, CRNConfig
from common.models.dpt import DPT, DPTConfig
from common.models.lite import LiteConfig, LiteNet
from common.models.subband import LiteSubbandConfig, LiteSubbandNet
from common.models.transformer import ShallowTransformer, TransformerConfig

MODEL_REGISTRY: dict[str, tuple[type[nn.Module], type]] = {
    "crn": (CRN, CRNConfig),
    "transformer": (ShallowTransformer, TransformerConfig),
    "dpt": (DPT, DPTConfig),
    "lite": (LiteNet, LiteConfig),
    "lite-sb": (LiteSubbandNet, LiteSubbandConfig),
}


def model_names() -> list[str]:
    return sorted(MODEL_REGISTRY)


def _coerce_config_value(value: object, default: object) -> object:
    # Checkpoints and JSON turn tuples into lists; the dataclass defaults say which was meant.
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def build_model(name: str, **config_overrides: object) -> nn.Module:
    """A fresh model by registry name; unknown names or config keys are a one-line UserError."""
    if name not in MODEL_REGISTRY:
        raise UserError(f"model {name!r} is unknown; choose one of: {', '.join(model_names())}")
    model_cls, cfg_cls = MODEL_REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(config_overrides) - set(fields))
    if unknown:
        raise UserError(
            f"model {name!r}: unknown config key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(fields)}"
        )
    defaults = cfg_cls()
    values = {k: _coerce_config_value(v, getattr(defaults, k)) for k, v in config_overrides.items()}
    return model_cls(cfg_cls(**values))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (fixed buffers such as filterbanks are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_config_dict(model: nn.Module) -> dict:
    """The model's config as plain Python types (safe for `torch.load(weights_only=True)`)."""
    return dataclasses.asdict(model.cfg)
