"""`python -m builders.smoke [NAME...]`: run every built notebook on CPU with tiny settings.

For each notebook: build it, execute it with papermill in a temporary folder with a kernel that
cannot import the repository's `common` (so the notebook is proven self-contained: its library
cell writes its own copy), render it to HTML with the library's code left out, and check its
summary.json (every metric present and finite) and its figures (every figure it saves is shown
in the notebook and in the HTML). Everything lands in build/smoke/NAME/.
Exits non-zero, with one line per failure naming the notebook and the failing cell.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter
from traitlets.config import Config

from builders.build import REPO, build_notebook, notebook_names, recipe_notebooks
from builders.generated import LIBRARY_TAG
from builders.library import top_level_names
from builders.parameters import parameters_cell
from common.errors import UserError, exit_status
from common.metric_names import ALL_METRICS
from common.recipes import load_recipe

SMOKE_DIR = Path("build", "smoke")
KERNEL_NAME = "lse-isolated"
REQUIRED_METRICS = ALL_METRICS  # PESQ, STOI, ESTOI, SI-SDR and DNSMOS
# Notebooks that read other notebooks' outputs run after them.
RUN_LAST = ("evaluate",)
SYNTHETIC_SOURCES = ("common/synthetic.py", "common/audio.py")
# The backend Jupyter and Kaggle use: plt.show() and a cell's open figures become image outputs.
# (Agg would draw nothing into the notebook, and its HTML would hold no figure.)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@dataclass
class SmokeConfig:
    """Tiny settings: the whole smoke must stay under 5 minutes on 2 CPU cores."""

    epochs: int = 1
    batch_size: int = 2
    segment_seconds: float = 1.0
    max_minutes: float = 10.0  # each notebook's session (training stops on `epochs` long before)
    max_train_pairs: int = 8
    max_test_pairs: int = 2
    eval_seconds: float = 4.0  # score only the first seconds of each (16-24 s) test file
    num_workers: int = 0
    seed: int = 0
    n_train_files: int = 8
    n_test_files: int = 3
    cell_timeout_s: int = 240
    device: str = "cpu"  # train.device: "cuda" runs the notebooks on a GPU (fp16 autocast)


@dataclass
class SmokeResult:
    name: str
    ok: bool
    seconds: float
    message: str = ""
    summary: dict | None = None

    def pesq_column(self) -> str:
        try:
            metrics = self.summary["metrics"]  # type: ignore[index]
            noisy, enhanced = metrics["noisy"]["pesq"]["mean"], metrics["enhanced"]["pesq"]["mean"]
            return f"{noisy:.2f} -> {enhanced:.2f}"
        except (KeyError, TypeError):
            return "-"


def synthetic_data(data_dir: Path, cfg: SmokeConfig, repo: Path = REPO) -> Path:
    """The synthetic corpus in the Kaggle 7z layout, regenerated only when its inputs change."""
    from common.synthetic import make_synthetic_corpus

    stamp_text = json.dumps(
        {
            "files": [
                hashlib.sha256((repo / f).read_bytes()).hexdigest() for f in SYNTHETIC_SOURCES
            ],
            "n": [cfg.n_train_files, cfg.n_test_files, cfg.seed],
        }
    )
    stamp = data_dir / ".smoke-stamp"
    archives = [data_dir / f"{n}.7z" for n in ("train", "y_train", "test", "y_test")]
    if all(a.is_file() for a in archives) and stamp.is_file() and stamp.read_text() == stamp_text:
        return data_dir
    print(f"generating the synthetic corpus in {data_dir} ...", flush=True)
    make_synthetic_corpus(
        data_dir, n_train=cfg.n_train_files, n_test=cfg.n_test_files, seed=cfg.seed
    )
    stamp.write_text(stamp_text)
    return data_dir


@contextmanager
def isolated_kernel(tmp: Path) -> Iterator[str]:
    """A kernelspec whose kernel cannot import `common`; yields the kernel name for papermill."""
    spec_dir = tmp / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    launcher = Path(__file__).resolve().with_name("isolated_kernel.py")
    spec = {
        # log_level: ipykernel 7 warns about unencrypted TCP at every start; errors still show.
        "argv": [
            sys.executable,
            str(launcher),
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": "Python 3 (without the repository)",
        "language": "python",
        "env": {"PYTHONPATH": "", "MPLBACKEND": INLINE_BACKEND},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(tmp / "jupyter"), previous]))
    try:
        yield KERNEL_NAME
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = previous


def execute(
    notebook: Path,
    executed: Path,
    parameters: dict,
    kernel_name: str,
    cwd: Path,
    timeout_s: int = 240,
) -> None:
    """Run a notebook with papermill; raise UserError naming the failing cell on any error."""
    # papermill re-parses the parameters cell only to warn, and its line parser misreads
    # comments containing `=`; smoke_parameters already passes only declared names.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(cwd),
            progress_bar=sys.stderr.isatty(),
            execution_timeout=timeout_s,
            log_output=False,
        )
    except papermill.PapermillExecutionError as exc:
        raise UserError(f"{executed}: {_failed_cell(executed, exc)}") from None
    except Exception as exc:  # a dead kernel, a timeout: nbclient raises several types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{executed}: {type(exc).__name__}: {reason}") from None


def _failed_cell(executed: Path, exc: papermill.PapermillExecutionError) -> str:
    # papermill adds error-marker cells to the executed notebook, so the cell index no longer
    # points at the failing cell there; its execution count does.
    first = ""
    if executed.is_file():
        for cell in nbformat.read(executed, as_version=4).cells:
            if cell.cell_type == "code" and cell.get("execution_count") == exc.exec_count:
                lines = [line for line in cell.source.splitlines() if line.strip()]
                first = f" `{lines[0][:60]}`" if lines else ""
    evalue = str(exc.evalue).strip().splitlines()[0] if str(exc.evalue).strip() else ""
    return f"cell In [{exc.exec_count}]{first} failed: {exc.ename}: {evalue}"


PROBE_SOURCE = """\
import importlib.util, os, sys
spec = importlib.util.find_spec("common")
assert spec is None, f"`common` is importable in the smoke kernel (from {spec.origin})"
print(os.getcwd())
"""


def check_isolation(kernel_name: str, tmp: Path) -> None:
    """Prove that `common` cannot be imported in the smoke kernel (else the smoke proves nothing)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PROBE_SOURCE)]
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    probe, cwd = tmp / "probe.ipynb", tmp / "probe"
    cwd.mkdir(exist_ok=True)
    nbformat.write(nb, probe)
    execute(probe, tmp / "probe.out.ipynb", {}, kernel_name, cwd, timeout_s=60)


def latest_checkpoint(smoke_dir: Path) -> Path | None:
    """The newest best.pt an earlier notebook of this smoke run wrote (for `evaluate`)."""
    found = sorted(smoke_dir.glob("*/**/best.pt"), key=lambda p: (p.stat().st_mtime, str(p)))
    return found[-1] if found else None


def smoke_parameters(
    notebook: Path,
    cfg: SmokeConfig,
    data_dir: Path,
    work_dir: Path,
    output_dir: Path,
    smoke_dir: Path,
    source: str = "kaggle",
) -> dict:
    """Tiny settings for the parameters the notebook declares (papermill warns about others);
    `source`: the recipe's data source.

    The run's settings go in as `overrides` of the recipe (or of the evaluated checkpoint's
    configuration): the synthetic corpus in the Kaggle layout, a few pairs, one short epoch.
    """
    overrides = {
        # A mixing recipe remixes the synthetic pairs (common.remix); every other notebook reads
        # them as fixed pairs.
        "data.source": source if source in ("mix", "remix") else "kaggle",
        "data.root": str(data_dir),
        "data.work_dir": str(work_dir),
        "data.max_test_pairs": cfg.max_test_pairs,
        "evaluate.eval_seconds": cfg.eval_seconds,
        "train.device": cfg.device,
    }
    declared = declared_parameters(notebook)
    if "recipe" in declared:  # the training notebook
        overrides.update(
            {
                "data.segment_seconds": cfg.segment_seconds,
                "data.max_train_pairs": cfg.max_train_pairs,
                "data.mix_items": cfg.max_train_pairs,  # a remixing epoch: as many items
                "train.epochs": cfg.epochs,
                "train.batch_size": cfg.batch_size,
                "train.num_workers": cfg.num_workers,
                "train.seed": cfg.seed,
                "train.progress": True,  # plain progress lines in the notebook (common.progress)
            }
        )
    wanted = {
        "overrides": overrides,
        "output_dir": str(output_dir),
        "max_minutes": cfg.max_minutes,
        "nproc": 1,
    }
    checkpoint = latest_checkpoint(smoke_dir)
    if checkpoint is not None:
        wanted["checkpoint"] = str(checkpoint)
    return {k: v for k, v in wanted.items() if k in declared}


def smoke_names(repo: Path = REPO) -> list[str]:
    """What `make smoke` runs: each model's own recipe (recipes/MODEL.toml, the one training
    notebook source once per model) and every other notebook; other recipes on request."""
    from common.models import model_names

    recipes = recipe_notebooks(repo)
    return [n for n in notebook_names(repo) if n in model_names() or n not in recipes]


def declared_parameters(notebook: Path) -> set[str]:
    """Names the notebook's parameters cell assigns (read with ast: papermill's own parser
    gives up on comments that contain `=` or quotes)."""
    cell = parameters_cell(nbformat.read(notebook, as_version=4).cells)
    return top_level_names(ast.parse(cell["source"])) if cell is not None else set()


def _walk(value: object, path: str) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "failures":
                yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    else:
        yield path, value


def _metric_summaries(value: object, path: str = "metrics") -> Iterator[tuple[str, dict]]:
    """Dicts in the agreed metrics-summary shape ({"noisy": {...}, ...}), wherever nested."""
    if isinstance(value, dict):
        if "noisy" in value or "enhanced" in value:
            yield path, value
        else:
            for key, item in value.items():
                yield from _metric_summaries(item, f"{path}.{key}")


def check_summary(summary: dict, required: tuple[str, ...] = REQUIRED_METRICS) -> list[str]:
    """Problems with a notebook's summary.json: missing metrics, non-finite numbers, failures."""
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict):
        return ['no "metrics" dict']
    problems = []
    for path, value in _walk(metrics, "metrics"):
        if value is None:
            problems.append(f"{path} is missing (null)")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{path} is {value}")
    groups = list(_metric_summaries(metrics))
    if not groups:
        problems.append('no metrics summary with "noisy"/"enhanced" found')
    for path, group in groups:
        for signal in ("noisy", "enhanced"):
            for metric in required:
                mean = (group.get(signal) or {}).get(metric, {}).get("mean")
                if not isinstance(mean, int | float) or isinstance(mean, bool):
                    problems.append(f"{path}.{signal}.{metric}.mean is missing")
        failures = group.get("failures") or []
        if failures:
            first = failures[0]
            problems.append(
                f"{len(failures)} metric failure(s), first: {first.get('file')} "
                f"{first.get('signal')} {first.get('metric')}: {first.get('reason')}"
            )
    return problems


def render_html(executed: Path) -> Path:
    """An HTML copy of the executed notebook (for reading without Jupyter).

    The library cell's code is left out (nbconvert ignores the collapsed state): its one line
    of output still says where the modules were written.
    """
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {LIBRARY_TAG}
    exporter = HTMLExporter(config=config)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def shown_figures(executed: Path) -> int:
    """How many images (PNG outputs) the executed notebook shows."""
    cells = nbformat.read(executed, as_version=4).cells
    outputs = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return sum("image/png" in o.get("data", {}) for o in outputs)


def check_figures(executed: Path, html: Path, out_dir: Path) -> list[str]:
    """Every figure the notebook saved (out_dir/*.png) must be shown in it and in its HTML."""
    saved = sorted(p.name for p in out_dir.glob("*.png"))
    shown = shown_figures(executed)
    in_html = html.read_text(encoding="utf-8").count("<img")
    problems = []
    if shown < len(saved):
        problems.append(
            f"{executed}: saves {len(saved)} figures ({', '.join(saved[:3])}...) but shows "
            f"{shown}; the kernel's matplotlib backend must be {INLINE_BACKEND}"
        )
    if in_html < shown:
        problems.append(f"{html}: shows {in_html} of the notebook's {shown} figures")
    return problems


def run_one(
    name: str,
    cfg: SmokeConfig,
    data_dir: Path,
    kernel_name: str,
    tmp: Path,
    smoke_dir: Path,
    repo: Path = REPO,
) -> SmokeResult:
    """Build, execute, render and check one notebook; failures come back in the result."""
    start = time.monotonic()
    out = smoke_dir / name
    shutil.rmtree(out, ignore_errors=True)  # a stale summary.json must never pass the check
    out.mkdir(parents=True)
    executed = out / f"{name}.ipynb"
    try:
        notebook = build_notebook(name, repo=repo)
        cwd = tmp / name
        cwd.mkdir()
        recipes = recipe_notebooks(repo)
        source = load_recipe(name, repo / "recipes").data.source if name in recipes else "kaggle"
        params = smoke_parameters(notebook, cfg, data_dir, cwd / "work", out, smoke_dir, source)
        error: UserError | None = None
        try:
            execute(notebook, executed, params, kernel_name, cwd, cfg.cell_timeout_s)
        except UserError as exc:
            error = exc
        if executed.is_file():  # a failed run is rendered too: its HTML shows the traceback
            try:
                render_html(executed)
            except Exception as exc:  # nbconvert raises many types (templates, mistune)
                error = error or UserError(
                    f"{executed}: HTML render failed: {type(exc).__name__}: {exc}"
                )
        if error:
            raise error
        problems = check_figures(executed, executed.with_suffix(".html"), out)
        if problems:
            raise UserError(problems[0])
        summary_path = out / "summary.json"
        if not summary_path.is_file():
            raise UserError(f"{executed}: ran, but wrote no {summary_path}")
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        problems = check_summary(summary)
        if problems:
            raise UserError(
                f"{summary_path}: {problems[0]}"
                + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
            )
    except UserError as exc:
        return SmokeResult(name, False, time.monotonic() - start, str(exc))
    return SmokeResult(name, True, time.monotonic() - start, summary=summary)


def _ordered(names: list[str]) -> list[str]:
    return [n for n in names if n not in RUN_LAST] + [n for n in names if n in RUN_LAST]


def print_table(results: list[SmokeResult], total_s: float) -> None:
    print(f"\n{'notebook':<14}{'status':<8}{'seconds':>9}  PESQ noisy -> enhanced")
    for r in results:
        print(f"{r.name:<14}{'ok' if r.ok else 'FAILED':<8}{r.seconds:>9.1f}  {r.pesq_column()}")
    print(f"{'total':<22}{total_s:>9.1f}")
    for r in results:
        if not r.ok:
            print(f"error: {r.message}", file=sys.stderr)


def run_smoke(
    names: list[str], repo: Path = REPO, cfg: SmokeConfig | None = None
) -> list[SmokeResult]:
    """Run `names` (training notebooks first) into repo/build/smoke/; UserError if it cannot start."""
    cfg = cfg or SmokeConfig()
    smoke_dir = repo / SMOKE_DIR
    names = _ordered(names)
    if not names:
        raise UserError("notebooks_src/ has no notebook sources (*.py not starting with '_')")
    data_dir = synthetic_data(smoke_dir / "data", cfg, repo)
    results: list[SmokeResult] = []
    with tempfile.TemporaryDirectory(prefix="lse-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        with isolated_kernel(tmp) as kernel_name:
            check_isolation(kernel_name, tmp)
            for i, name in enumerate(names, 1):
                print(f"[{i}/{len(names)}] {name}: running ...", flush=True)
                result = run_one(name, cfg, data_dir, kernel_name, tmp, smoke_dir, repo)
                results.append(result)
                status = "ok" if result.ok else "FAILED"
                print(f"[{i}/{len(names)}] {name}: {status} in {result.seconds:.0f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builders.smoke", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="notebooks to run (default: all)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where the notebooks train and enhance (cuda: a GPU with fp16 autocast)",
    )
    args = parser.parse_args(argv)
    return exit_status(lambda: smoke_and_report(args.names, args.device))


def smoke_and_report(names: list[str], device: str) -> int:
    """`python -m builders.smoke NAMES`: run them (all when none are named), print the table;
    0 when every notebook passed."""
    started = time.monotonic()
    results = run_smoke(names or smoke_names(), cfg=SmokeConfig(device=device))
    total = time.monotonic() - started
    print_table(results, total)
    if total > 300:
        print(f"warning: the smoke took {total:.0f} s, over its 5-minute budget", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
