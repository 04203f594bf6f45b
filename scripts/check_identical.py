"""Two source trees train the same run bit for bit: `history.json` and every checkpoint tensor.

    python scripts/check_identical.py BEFORE AFTER --data-root ../shared/data --out /tmp/ident
    python scripts/check_identical.py BEFORE AFTER ... --notebook     # + the built notebook

Each tree trains with its own virtual environment (TREE/.venv, its editable install naming that
tree), in its own folder: the command line (`python -m common train --recipe lite-v2 ...
--max-steps N`), a second command-line run stopped early and continued with `--resume` to the
same N steps, and, with --notebook, the recipe's built notebook through papermill (as
tests/test_one_training_path.py runs it). Then, for each pair of runs:

- `history.json` compared byte for byte after removing the fields that measure time
  (TIMING_FIELDS; nothing else is removed);
- every checkpoint file the runs wrote (best.pt, last.pt, epoch_NNN.pt): every tensor equal
  exactly (`torch.equal`: shipped weights, raw weights under EMA, optimizer moments, RNG states)
  and every other value equal, timing fields aside.

A `max_steps` run is bit-reproducible while its time budget is far from binding: the cosine is
fitted to the budget only when the measured rate says fewer steps fit than `max_steps`
(common.schedule), which lite-v2's 120 CPU minutes never do for a few hundred steps.
Exit status 0 when everything matches; the report lists each comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

# What measures time rather than training: the summary's and each checkpoint's summed session
# seconds, and each history entry's seconds since the session started.
TIMING_FIELDS = {"train_seconds", "elapsed_seconds"}
RECIPE = "lite-v2"
NOTEBOOK_RUN = """
import json, sys
from pathlib import Path
from builders.build import build_kernel
from builders.smoke import execute, isolated_kernel
out, params = Path(sys.argv[1]), json.loads(sys.argv[2])
notebook = build_kernel({recipe!r}, force=True) / "{recipe}.ipynb"
(out / "cwd").mkdir(parents=True, exist_ok=True)
with isolated_kernel(out / "kernel") as kernel:
    execute(notebook, out / "executed.ipynb", params, kernel, out / "cwd", timeout_s=3000)
"""


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def history_bytes(path: Path) -> bytes:
    return json.dumps(without_timing(json.loads(path.read_text())), indent=2).encode()


def diff_values(a: Any, b: Any, where: str, out: list[str]) -> None:
    """Every place where `a` and `b` differ (tensors exactly), named by its key path."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
        if not same:
            out.append(where)
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k in TIMING_FIELDS:
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k} (missing on one side)")
            else:
                diff_values(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            out.append(f"{where} (length {len(a)} vs {len(b)})")
        for i, (x, y) in enumerate(zip(a, b)):
            diff_values(x, y, f"{where}[{i}]", out)
    elif a != b and not (a != a and b != b):  # NaN equals NaN here
        out.append(f"{where}: {a!r} vs {b!r}")


def count_tensors(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return 1
    if isinstance(value, dict):
        return sum(count_tensors(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(count_tensors(v) for v in value)
    return 0


def compare_runs(name: str, a: Path, b: Path) -> bool:
    ok = True
    ha, hb = history_bytes(a / "history.json"), history_bytes(b / "history.json")
    entries = len(json.loads(ha)["history"])
    same = ha == hb
    print(f"{name}: history.json {'identical' if same else 'DIFFERENT'} ({len(ha)} bytes, "
          f"{entries} entries, timing fields removed: {sorted(TIMING_FIELDS)})")  # fmt: skip
    ok &= same
    names_a = sorted(p.name for p in a.glob("*.pt"))
    names_b = sorted(p.name for p in b.glob("*.pt"))
    if names_a != names_b:
        print(f"{name}: checkpoint files differ: {names_a} vs {names_b}")
        return False
    for ckpt in names_a:
        sa = torch.load(a / ckpt, map_location="cpu", weights_only=True)
        sb = torch.load(b / ckpt, map_location="cpu", weights_only=True)
        diffs: list[str] = []
        diff_values(sa, sb, ckpt, diffs)
        n = count_tensors(sa)
        status = "identical" if not diffs else f"DIFFERENT at {diffs[:5]}"
        print(f"{name}: {ckpt} (step {sa.get('step')}, {n} tensors) {status}")
        ok &= not diffs
    return ok


def run(cmd: list[str], cwd: Path, log: Path) -> None:
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(
            f"error: {' '.join(cmd[:6])} ... failed in {cwd} (exit {proc.returncode}); see {log}"
        )


def train_runs(tree: Path, out: Path, args: argparse.Namespace) -> None:
    python = str(tree / ".venv" / "bin" / "python")
    base = [python, "-m", "common", "train", "--recipe", RECIPE, "--data-root", args.data_root,
            "--work-dir", str(args.out / "work"), "--no-progress",
            *[f"--set={s}" for s in args.set]]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    cli = [*base, "--overwrite", "--out", str(out / "cli"), "--max-steps", str(args.max_steps)]
    run(cli, tree, out / "cli.log")
    first = [
        *base,
        "--overwrite",
        "--out",
        str(out / "resumed"),
        "--max-steps",
        str(args.resume_at),
    ]
    run(first, tree, out / "resumed-1.log")
    then = [*base, "--out", str(out / "resumed"), "--max-steps", str(args.max_steps)]
    run([*then, "--resume", str(out / "resumed" / "last.pt")], tree, out / "resumed-2.log")
    if args.notebook:
        overrides = {
            "data.root": args.data_root,
            "data.work_dir": str(args.out / "work"),
            "data.max_test_pairs": 2,
            "evaluate.dnsmos": False,
            "evaluate.eval_seconds": 2.0,
            "train.max_steps": args.max_steps,
            "train.progress": False,
            **{k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)},
        }
        params = {"overrides": overrides, "output_dir": str(out / "notebook"), "nproc": 1}
        code = NOTEBOOK_RUN.format(recipe=RECIPE)
        run([python, "-c", code, str(out / "nb"), json.dumps(params)], tree, out / "nb.log")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-steps", type=int, default=60)
    p.add_argument("--resume-at", type=int, default=25, help="steps of the first resumed session")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="a setting for every run, e.g. data.mix_items=80")  # fmt: skip
    p.add_argument("--notebook", action="store_true", help="also the built notebook (papermill)")
    p.add_argument("--skip-training", action="store_true", help="compare existing runs only")
    p.add_argument(
        "--reuse-before", action="store_true", help="train AFTER only (BEFORE's runs exist)"
    )
    args = p.parse_args()
    args.out = args.out.resolve()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    if not args.skip_training:
        for label, tree in trees.items():
            if label == "before" and args.reuse_before:
                continue
            print(f"training in {tree} ({label}) ...", flush=True)
            train_runs(tree, args.out / label, args)
    runs = ["cli", "resumed"] + (["notebook"] if args.notebook else [])
    ok = True
    for name in runs:
        ok &= compare_runs(name, args.out / "before" / name, args.out / "after" / name)
    print("all identical" if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
