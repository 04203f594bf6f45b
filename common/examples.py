"""The listening examples every run saves: the same few test files for every run, as audio files.

The choice depends only on the file names (the ones with the smallest sha256 of their name), so
two runs evaluated on the same test files save the same examples whatever their order or number,
and the report can play noisy / each run / clean side by side. Each example is the first
`EXAMPLE_SECONDS` of the evaluated signal, written as 16-bit WAV under `examples/` with an
`index.json` naming the test file of each.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from common.atomic import atomic_write
from common.audio import SAMPLE_RATE

EXAMPLES_DIR = "examples"
EXAMPLES_INDEX = "index.json"
EXAMPLE_COUNT = 5
EXAMPLE_SECONDS = 8.0
EXAMPLE_SIGNALS = ("noisy", "enhanced", "clean")


def choose_examples(names: Iterable[str], n: int = EXAMPLE_COUNT) -> list[str]:
    """The `n` names with the smallest sha256: fixed for a set of files, whatever its order."""
    unique = sorted(set(names))
    return sorted(unique, key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:n]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "file"


def save_examples(
    items: Sequence[Any],
    out_dir: str | Path,
    n: int = EXAMPLE_COUNT,
    seconds: float = EXAMPLE_SECONDS,
    sr: int = SAMPLE_RATE,
) -> Path:
    """Write the chosen items' noisy, enhanced and clean signals (objects with `name` and those
    three arrays, e.g. `EvalItem`s) to out_dir/examples/ and return its index.json."""
    folder = Path(out_dir) / EXAMPLES_DIR
    by_name = {str(it.name): it for it in items}
    index: dict[str, dict[str, str]] = {}
    for i, name in enumerate(choose_examples(by_name, n)):
        item = by_name[name]
        files = {}
        for signal in EXAMPLE_SIGNALS:
            wav = getattr(item, signal, None)
            if wav is None:
                continue
            wav = np.asarray(wav, dtype=np.float32).reshape(-1)[: int(seconds * sr)]
            rel = f"{i + 1:02d}_{_safe(Path(name).stem)}.{signal}.wav"
            with atomic_write(folder / rel, "wb") as fh:
                sf.write(fh, np.clip(wav, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
            files[signal] = rel
        index[name] = files
    path = folder / EXAMPLES_INDEX
    with atomic_write(path) as fh:
        fh.write(json.dumps({"seconds": seconds, "sample_rate": sr, "files": index}, indent=2))
    return path


def read_examples(run_dir: str | Path) -> dict[str, dict[str, Path]]:
    """{test file: {signal: path}} from run_dir/examples/index.json ({} when there is none).

    Raises ValueError naming the problem when the index is unreadable or names a missing file."""
    folder = Path(run_dir) / EXAMPLES_DIR
    index = folder / EXAMPLES_INDEX
    if not index.is_file():
        return {}
    try:
        files = json.loads(index.read_text(encoding="utf-8"))["files"]
        out = {
            str(name): {s: folder / rel for s, rel in sig.items()} for name, sig in files.items()
        }
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{index}: unreadable ({exc})") from None
    missing = [p.name for sig in out.values() for p in sig.values() if not p.is_file()]
    if missing:
        raise ValueError(f"{index}: names {len(missing)} missing file(s), e.g. {missing[0]}")
    return out
