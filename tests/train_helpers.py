"""A tiny model, dataset and loss for trainer/checkpoint/DDP tests (seconds on a CPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from common.config import StftConfig

TINY_STFT = StftConfig(n_fft=64, hop_length=32)


@dataclass
class TinyMaskConfig:
    n_freq: int = 33
    hidden: int = 16
    dropout: float = 0.0


class TinyMask(nn.Module):
    """Per-frame MLP on log-magnitudes predicting a real mask: small but trainable."""

    name = "tiny"

    def __init__(self, cfg: TinyMaskConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or TinyMaskConfig()
        self.net = nn.Sequential(
            nn.Linear(self.cfg.n_freq, self.cfg.hidden),
            nn.ReLU(),
            nn.Dropout(self.cfg.dropout),
            nn.Linear(self.cfg.hidden, self.cfg.n_freq),
        )
        # A buffer, like the real models' filterbanks: DDP synchronises buffers in its forward,
        # which must not happen at validation time (shards of unequal size would deadlock).
        self.register_buffer("gain", torch.ones(self.cfg.n_freq, 1))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        feats = torch.log1p(spec.abs()).transpose(1, 2)  # (B, T, F)
        mask = torch.sigmoid(self.net(feats)).transpose(1, 2)
        return spec * mask * self.gain


class ToySpeechSet(torch.utils.data.Dataset):
    """Harmonic 'speech' plus white noise; items depend only on (index, epoch), as the project's
    datasets guarantee, so resumed runs can replay them exactly."""

    def __init__(self, n: int = 24, length: int = 1024, seed: int = 0, train: bool = True):
        self.n, self.length, self.seed, self.train, self.epoch = n, length, seed, train, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, i, self.epoch if self.train else 0])
        t = np.arange(self.length) / 16000
        f0 = rng.uniform(100, 300)
        clean = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        clean = 0.3 * clean / np.abs(clean).max()
        noisy = clean + 0.1 * rng.standard_normal(self.length)
        return torch.tensor(noisy, dtype=torch.float32), torch.tensor(clean, dtype=torch.float32)


@dataclass
class ToyLossConfig:
    mag_weight: float = 1.0
    wav_weight: float = 1.0


class ToyLoss:
    def __init__(self, cfg: ToyLossConfig | None = None) -> None:
        self.cfg = cfg or ToyLossConfig()

    def __call__(self, est_spec, clean_spec, est_wav, clean_wav):
        mag = (est_spec.abs() - clean_spec.abs()).abs().mean()
        wav = (est_wav - clean_wav).pow(2).mean()
        total = self.cfg.mag_weight * mag + self.cfg.wav_weight * wav
        return total, {"mag": float(mag.detach()), "wav": float(wav.detach())}


def make_tiny(seed: int = 0, **cfg) -> TinyMask:
    torch.manual_seed(seed)
    return TinyMask(TinyMaskConfig(**cfg))


def save_model_checkpoint(path, model: nn.Module, stft: StftConfig | None = None):
    """A model's weights in the trainer's checkpoint format, without training state (what
    `load_model` and `enhance` need), for tests of inference, export and the demo."""
    from common.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint
    from common.models import model_config_dict

    state = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_name": model.name,
        "model_config": model_config_dict(model),
        "stft": (stft or StftConfig()).to_dict(),
        "model": model.state_dict(),
    }
    return save_checkpoint(path, state)


def assert_trained_with(cfg, ckpt_path) -> None:
    """The checkpoint at `ckpt_path` was trained with the RunConfig `cfg`: model, STFT, loss,
    training settings and data, as far as the checkpoint recorded them."""
    import dataclasses

    from common.config import RunConfig, config_dict
    from common.models import build_model

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["model_name"] == cfg.model.name
    model = build_model(cfg.model.name, n_freq=cfg.stft.n_freq, **cfg.model.settings)
    assert ckpt["model_config"] == dataclasses.asdict(model.cfg)
    values = config_dict(cfg)
    assert ckpt["stft"] == values["stft"] and ckpt["loss_config"] == values["loss"]
    defaults = config_dict(RunConfig())["train"]
    for key, value in values["train"].items():
        if key not in ("progress", "device"):  # how it ran here, not what it trained
            # A setting newer than the checkpoint (optimizer) had its default value then.
            assert ckpt["train_config"].get(key, defaults[key]) == value, key
    data = ckpt["data"]
    assert (data["source"], data["snr_db"]) == (cfg.data.source, list(cfg.data.snr_db))
    assert (data["items_per_epoch"], data["exclude_noncommercial"]) == (
        cfg.data.mix_items,
        cfg.data.exclude_noncommercial,
    )
    # Newer checkpoints hold the whole RunConfig: every data setting must agree (babble, crops),
    # except where the data lived on that machine.
    stored = ckpt.get("run_config", {}).get("data")
    if stored:
        for key, value in values["data"].items():
            if key not in ("root", "work_dir"):
                assert stored.get(key, value) == value, f"data.{key}"
