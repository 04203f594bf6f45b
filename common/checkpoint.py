"""Checkpoints that survive crashes, torch upgrades and `weights_only=True` loading.

A checkpoint is one dict of plain Python values and tensors: it is written to a temporary file
in the same folder and renamed over the target (`os.replace` is atomic on POSIX and Windows), so
a crash or a kill mid-write leaves the previous checkpoint intact. Loading always passes
`weights_only=True` explicitly: the default changed in torch 2.6, and an explicit argument means
the behaviour does not depend on the installed version.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import atomic_write
from common.errors import UserError

# The model the project ships and its tools default to (demo, benches; the Makefile's CKPT).
SHIPPED_CHECKPOINT = Path("checkpoints") / "lite-v2.pt"
CHECKPOINT_FORMAT = "speech-enhancement-checkpoint"
CHECKPOINT_VERSION = 1
# Keys every model checkpoint written by the trainer has; `load_checkpoint` checks them.
CHECKPOINT_REQUIRED_KEYS = ("format", "model_name", "model_config", "stft", "model")


def plain(value: Any) -> Any:
    """`value` with numpy scalars/arrays, tuples and Paths turned into plain Python types.

    `torch.load(weights_only=True)` refuses numpy objects, and JSON refuses most of them too.
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def json_safe(value: Any) -> Any:
    """`plain(value)` with NaN/inf floats as None, so `json.dump(allow_nan=False)` succeeds."""
    value = plain(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def capture_rng_state() -> dict:
    """Python, numpy, torch (and CUDA when in use) RNG states in weights_only-loadable form."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    # Only when CUDA is already in use: even `torch.cuda.is_available()` initialises the driver,
    # which must not happen in a parent process that later forks data-parallel workers.
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state` (a CUDA state is applied only when CUDA is in use)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_initialized():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` atomically (temp file, fsync, rename) and return the path."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


def _load_failure_reason(exc: Exception) -> str:
    # torch's weights_only message is a page long; its useful line names the refused object.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". ")[0].strip()[:200]
    return (lines[0] if lines else type(exc).__name__)[:200]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`, with `weights_only=True`.

    Anything else (a missing file, a bare state dict from an old notebook, a truncated file)
    raises a one-line `UserError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; check the path (e.g. OUT/best.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = _load_failure_reason(exc)
        raise UserError(
            f"{path}: not a readable checkpoint ({reason}); use a .pt file written by "
            "`python -m common train`"
        ) from None
    missing = [k for k in CHECKPOINT_REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: not a checkpoint written by `python -m common train` "
            f"(missing {', '.join(missing) or 'format tag'}); retrain or convert it"
        )
    if int(state.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise UserError(
            f"{path}: checkpoint format version {state['format_version']} is newer than this "
            f"code understands ({CHECKPOINT_VERSION}); update the code"
        )
    return state
