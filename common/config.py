"""One run configuration for every way of training: the command line, the notebooks, smoke, bench.

Every section of a run (STFT, loss, training, data, evaluation) is defined here, with the ranges
its fields are checked against; this module imports no training, model or audio code.

A run is described by one nested dataclass, `RunConfig` (data, model, STFT, loss, training,
evaluation), stored whole in every checkpoint and `summary.json`; recipes and overrides by
dotted name (`train.lr=2e-3`) build one in common.recipes.

    config_dict(cfg)                                           # plain types, for JSON/checkpoints
    config_from_dict(values)                                   # and back, every field checked
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from common.budget import BUDGET_CLOCKS
from common.checks import MAX_SEED, SettingError, choice, flag, number, text
from common.errors import UserError

SAMPLE_RATE = 16000
MIN_N_FFT, MAX_N_FFT = 8, 16384  # STFT windows of 0.5 ms to 1 s at 16 kHz
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000
LOSS_TERMS = ("log_mag_l1", "compressed_mag", "compressed_complex", "mrstft", "si_sdr")
MAX_LOSS_WEIGHT = 1e6
SCHEDULERS = ("plateau", "cosine")
DEVICES = ("auto", "cpu", "cuda")
# Upper bounds of the training settings: far above any sensible run, low enough that a typo
# (an extra digit, 1e12) is refused when the run starts instead of hours later.
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_LR = 10.0
MAX_MINUTES = 60 * 24 * 365.0
MAX_STEPS = 10**12
MAX_WORKERS = 256
# `train.optimizer` -> the torch.optim class that common.train builds (by name: no torch here).
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW"}


@dataclass(frozen=True)
class StftConfig:
    """STFT settings shared by a model, its training and its reconstruction.

    The defaults (512-point window, hop 256 at 16 kHz: 32 ms / 16 ms) are the team's; hop 128 and
    shorter windows for low latency are supported. `sqrt_hann` gives perfect reconstruction at
    50% overlap with the same window on analysis and synthesis.
    """

    n_fft: int = 512
    hop_length: int = 256
    win_length: int | None = None
    window: str = "hann"  # "hann" or "sqrt_hann"
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        number("stft.n_fft", self.n_fft, MIN_N_FFT, MAX_N_FFT, whole=True)
        number("stft.win_length", self.win_length, 1, self.n_fft, whole=True, optional=True)
        number("stft.hop_length", self.hop_length, 1, self.win, whole=True)
        choice("stft.window", self.window, ("hann", "sqrt_hann"))
        number("stft.sample_rate", self.sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, whole=True)

    @property
    def win(self) -> int:
        return self.win_length or self.n_fft

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window_ms(self) -> float:
        return 1000.0 * self.win / self.sample_rate

    @property
    def hop_ms(self) -> float:
        return 1000.0 * self.hop_length / self.sample_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class LossConfig:
    log_mag_l1: float = 0.0
    compressed_mag: float = 70.0
    compressed_complex: float = 30.0
    mrstft: float = 0.0
    si_sdr: float = 0.1
    compress: float = 0.3
    mrstft_ffts: tuple[int, ...] = (256, 512, 1024)  # hop = n_fft // 4, Hann window

    def __post_init__(self) -> None:
        """Weights finite and >= 0, at least one on; the compression and resolutions usable."""
        for name in LOSS_TERMS:
            number(f"loss.{name}", getattr(self, name), 0, MAX_LOSS_WEIGHT)
        if not any(getattr(self, name) for name in LOSS_TERMS):
            raise SettingError(
                "loss.compressed_mag",
                self.compressed_mag,
                "every loss weight is 0; give at least one term a weight",
            )
        number("loss.compress", self.compress, 0, 1, lo_open=True)
        if not isinstance(self.mrstft_ffts, tuple | list) or not self.mrstft_ffts:
            raise SettingError("loss.mrstft_ffts", self.mrstft_ffts, "give one or more FFT sizes")
        for n_fft in self.mrstft_ffts:
            number("loss.mrstft_ffts", n_fft, 16, 16384, whole=True)

    @classmethod
    def seed(cls) -> LossConfig:
        """The seed notebooks' loss: L1 on log1p magnitude only."""
        return cls(log_mag_l1=1.0, compressed_mag=0.0, compressed_complex=0.0, si_sdr=0.0)


@dataclass
class TrainConfig:
    """Optimisation settings; stored in every checkpoint (plain types only)."""

    epochs: int = 50
    batch_size: int = 16  # effective batch over all processes
    lr: float = 1e-3  # for the effective batch; not rescaled with the number of processes
    optimizer: str = "adam"  # "adam" (weight decay as L2) or "adamw" (decoupled weight decay)
    weight_decay: float = 1e-5
    warmup_epochs: float = 1.0  # linear warmup, per step, from lr/steps to lr
    # "plateau" (on val loss) or "cosine" (per step, after warmup). With `max_minutes` the cosine
    # is fitted to the budget from the measured step rate, so a time-limited run still ends at
    # `min_lr` instead of stopping near the peak lr of a schedule sized for `epochs`. The lr then
    # depends on the machine's speed: such runs are not bit-reproducible (`max_steps` runs are).
    scheduler: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    grad_clip: float = 5.0
    # Validate and ship an exponential moving average of the weights (common.ema); 0: off.
    # 0.999 averages roughly the last 1,000 steps.
    ema_decay: float = 0.0
    patience: int = 10  # early stopping: epochs without val-loss improvement; 0 disables
    max_minutes: float | None = None  # time budget of this session, on `budget_clock`
    # "wall": wall-clock minutes; "cpu": this process's CPU minutes (all threads), the same
    # compute for every run on a shared machine (`make bench` compares recipes with it).
    budget_clock: str = "wall"
    max_steps: int | None = None  # total optimizer steps (counting resumed ones)
    checkpoint_every: int = 5  # periodic epoch_NNN.pt every N epochs; 0 disables
    num_workers: int = 2
    val_batch_size: int | None = None  # per process; default: the per-process train batch
    seed: int = 0
    amp: bool = True  # fp16 autocast + GradScaler, used on CUDA only
    device: str = "auto"  # "auto", "cpu" or "cuda"
    progress: bool = True

    def __post_init__(self) -> None:
        """Every field finite and in its range, and consistent with the others (common.checks)."""
        number("train.epochs", self.epochs, 1, MAX_EPOCHS, whole=True)
        number("train.batch_size", self.batch_size, 1, MAX_BATCH, whole=True)
        number("train.lr", self.lr, 0, MAX_LR, lo_open=True)
        choice("train.optimizer", self.optimizer, OPTIMIZERS)
        number("train.weight_decay", self.weight_decay, 0, 1)
        number("train.warmup_epochs", self.warmup_epochs, 0, MAX_EPOCHS)
        choice("train.scheduler", self.scheduler, SCHEDULERS)
        number("train.plateau_factor", self.plateau_factor, 0, 1, lo_open=True, hi_open=True)
        number("train.plateau_patience", self.plateau_patience, 0, MAX_EPOCHS, whole=True)
        number("train.min_lr", self.min_lr, 0, MAX_LR)
        if self.min_lr > self.lr:
            raise SettingError(
                "train.lr", self.lr, f"must not be below train.min_lr={self.min_lr:g}"
            )
        number("train.grad_clip", self.grad_clip, 0, lo_open=True)
        if not (isinstance(self.ema_decay, int | float) and 0.0 <= self.ema_decay < 1.0):
            raise SettingError(
                "train.ema_decay", self.ema_decay, "use 0 (off) or a value in (0, 1), e.g. 0.999"
            )
        number("train.patience", self.patience, 0, MAX_EPOCHS, whole=True)
        number("train.max_minutes", self.max_minutes, 0, MAX_MINUTES, lo_open=True, optional=True)
        choice("train.budget_clock", self.budget_clock, BUDGET_CLOCKS)
        number("train.max_steps", self.max_steps, 1, MAX_STEPS, whole=True, optional=True)
        number("train.checkpoint_every", self.checkpoint_every, 0, MAX_EPOCHS, whole=True)
        number("train.num_workers", self.num_workers, 0, MAX_WORKERS, whole=True)
        number("train.val_batch_size", self.val_batch_size, 1, MAX_BATCH, whole=True, optional=True)
        number("train.seed", self.seed, 0, MAX_SEED, whole=True)
        flag("train.amp", self.amp)
        choice("train.device", self.device, DEVICES)
        flag("train.progress", self.progress)
        if self.budget_clock == "cpu" and self.num_workers:
            # Worker processes' CPU time would not count against the budget.
            raise SettingError(
                "train.num_workers",
                self.num_workers,
                "with train.budget_clock='cpu' data workers' CPU time is not counted; use 0",
            )


@dataclass
class DataConfig:
    """Where training pairs come from and how they are cut."""

    # "kaggle": the team's paired dataset (7z archives or extracted folders);
    # "mix": clean speech + noise mixed on the fly (speaker-disjoint splits); from a root with
    #   speech/ + noise/, else from a paired dataset: its clean files and the residual noise of
    #   other pairs, remixed (common.remix; the public Kaggle dataset on Kaggle);
    # "remix": a paired dataset remixed, never speech/ + noise/ folders;
    # "synthetic": a small generated corpus in the Kaggle layout (tests, smoke).
    source: str = "kaggle"
    # kaggle, remix: the dataset root; mix: a folder with speech/ and noise/ (+ MANIFEST.csv)
    # or a paired dataset. "auto": ../shared/data (or $SHARED_DATA) for mix, else (or when no
    # speech/ + noise/ dataset is attached) the public dataset under /kaggle/input.
    root: str = "auto"
    work_dir: str = "auto"  # where archives are extracted
    segment_seconds: float = 3.0
    val_fraction: float = 0.05  # paired data held out for validation
    max_train_pairs: int = 0  # 0: all
    max_test_pairs: int = 0  # 0: all
    mix_items: int = 2000  # mix: mixtures per epoch
    snr_db: tuple[float, float] = (5.0, 20.0)  # mix
    exclude_noncommercial: bool = False  # mix: leave out sources a shipped model may not use
    babble_prob: float = 0.0  # mix: share of training mixtures with babble (other talkers) as noise
    augment_prob: float = 0.0  # mix: share of training speech crops changed by common.augment

    def __post_init__(self) -> None:
        """Every field finite and in its range (common.checks)."""
        if self.source not in DATA_SOURCES:
            raise SettingError("data.source", self.source, f"use one of {', '.join(DATA_SOURCES)}")
        text("data.root", self.root)
        text("data.work_dir", self.work_dir)
        number("data.segment_seconds", self.segment_seconds, 0, MAX_SEGMENT_SECONDS, lo_open=True)
        number("data.val_fraction", self.val_fraction, 0, 1, hi_open=True)
        number("data.max_train_pairs", self.max_train_pairs, 0, MAX_ITEMS, whole=True)
        number("data.max_test_pairs", self.max_test_pairs, 0, MAX_ITEMS, whole=True)
        number("data.mix_items", self.mix_items, 1, MAX_ITEMS, whole=True)
        if not isinstance(self.snr_db, tuple | list) or len(self.snr_db) != 2:
            raise SettingError("data.snr_db", self.snr_db, "give two numbers, LOW HIGH, in dB")
        for snr in self.snr_db:
            number("data.snr_db", snr, -MAX_SNR_DB, MAX_SNR_DB)
        if self.snr_db[0] > self.snr_db[1]:
            raise SettingError("data.snr_db", self.snr_db, "LOW must not exceed HIGH")
        flag("data.exclude_noncommercial", self.exclude_noncommercial)
        number("data.babble_prob", self.babble_prob, 0, 1)
        number("data.augment_prob", self.augment_prob, 0, 1)


DATA_SOURCES = ("kaggle", "mix", "remix", "synthetic")
MAX_SEGMENT_SECONDS = 600.0  # a training crop; 3 s is usual
MAX_ITEMS = 10**9
MAX_SNR_DB = 100.0
MAX_EVAL_SECONDS = 24 * 3600.0


@dataclass
class ModelSpec:
    """A model by name with the settings that differ from its defaults (`n_freq` follows STFT)."""

    name: str = "lite"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """The test-set evaluation after training."""

    eval_seconds: float = 0.0  # 0: whole test files
    reserve_minutes: float | None = None  # kept for it in a notebook; None: 2% of max_minutes
    dnsmos: bool = (
        True  # DNSMOS of noisy and enhanced too (no reference; ~0.3 CPU s per hop of 1 s)
    )

    def __post_init__(self) -> None:
        number("evaluate.eval_seconds", self.eval_seconds, 0, MAX_EVAL_SECONDS)
        number("evaluate.reserve_minutes", self.reserve_minutes, 0, optional=True)


# `enhance --vad`'s gate (common.vad, common.vad_gate); not part of a training run.
MIN_FLOOR_DB = -120.0
MAX_GATE_MS = 10_000.0


@dataclass
class VadConfig:
    """Silero's decision settings (its own defaults)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30

    def __post_init__(self) -> None:
        number("vad.threshold", self.threshold, 0, 1, lo_open=True, hi_open=True)
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            number(f"vad.{name}", getattr(self, name), 0, MAX_GATE_MS, whole=True)


@dataclass
class GateConfig:
    """VAD gating: non-speech is attenuated to `floor_db`, with raised-cosine fades of `fade_ms`
    placed outside the speech segments so speech itself is never attenuated."""

    floor_db: float = -20.0
    fade_ms: float = 60.0
    vad: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self) -> None:
        # floor_db is an attenuation in dB (0: none); fades longer than a few seconds are not
        # fades any more.
        number("vad.floor_db", self.floor_db, MIN_FLOOR_DB, 0)
        number("vad.fade_ms", self.fade_ms, 0, MAX_GATE_MS)


@dataclass
class RunConfig:
    """Everything that defines a run; `recipe` and `description` say where it came from."""

    recipe: str = "custom"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    stft: StftConfig = field(default_factory=StftConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        """Each section checked its own fields; here, what must agree between sections."""
        segment = self.data.segment_seconds * self.stft.sample_rate
        if segment < self.stft.n_fft:
            shortest = self.stft.n_fft / self.stft.sample_rate
            raise SettingError(
                "data.segment_seconds",
                self.data.segment_seconds,
                f"shorter than one STFT window (stft.n_fft={self.stft.n_fft} samples); use at "
                f"least {shortest:.3g}",
            )


SECTIONS = {
    f.name: f for f in dataclasses.fields(RunConfig) if f.name not in ("recipe", "description")
}


def config_dict(cfg: RunConfig) -> dict[str, Any]:
    """The configuration as plain JSON types (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def coerce_setting(where: str, default: Any, value: Any) -> Any:
    """`value` in the type of the field's default (TOML and JSON have no tuples, no None)."""
    if (
        isinstance(value, str)
        and value.lower() in ("none", "null")
        and not isinstance(default, str)
    ):
        return None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int | float) or default is None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if isinstance(default, float) else value
        if default is None and value is None:
            return None
        if default is None and isinstance(value, str | dict | list):
            return value
    elif isinstance(default, tuple | list):
        if isinstance(value, tuple | list):
            items = [coerce_setting(where, default[0], v) if default else v for v in value]
            return tuple(items) if isinstance(default, tuple) else items
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return dict(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    raise SettingError(where, value, f"expected a value like {default!r}")


def _section_from(cls: type, values: dict[str, Any], where: str, name: str) -> Any:
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(
            f"{where} {name}.{unknown[0]}: unknown setting; known: {', '.join(sorted(known))}"
        )
    kwargs = {k: coerce_setting(f"{name}.{k}", getattr(defaults, k), v) for k, v in values.items()}
    return cls(**{**{k: getattr(defaults, k) for k in known}, **kwargs})


def config_from_dict(values: dict[str, Any], where: str = "config", source: str = "") -> RunConfig:
    """A RunConfig from nested plain values (a recipe file, a checkpoint's stored config); a bad
    value is a SettingError naming its field (and `source`, the file it came from, if given)."""
    try:
        return _config_from_dict(dict(values), where)
    except SettingError as exc:
        raise exc.within(source) if source else exc from None


def _config_from_dict(values: dict[str, Any], where: str) -> RunConfig:
    top = {k: values.pop(k) for k in ("recipe", "description") if k in values}
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise UserError(f"{where}: unknown section [{unknown[0]}]; sections: {', '.join(SECTIONS)}")
    sections = {}
    for name, f in SECTIONS.items():
        section = values.get(name, {})
        if not isinstance(section, dict):
            raise UserError(f"{where}: [{name}] must be a table of settings")
        sections[name] = _section_from(f.default_factory().__class__, section, where, name)
    return RunConfig(**top, **sections)
