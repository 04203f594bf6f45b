"""`python -m builders.build [NAME...]`: turn a notebook source into a self-contained notebook.

NAME is a recipe (recipes/NAME.toml: built from the one training notebook, notebooks_src/train.py,
with the recipe's title, description and name filled in and the recipe shipped with it) or
another notebook source (notebooks_src/NAME.py: evaluate, vad).

The `common` modules the source imports (transitively) travel inside the notebook: one collapsed
cell writes them as files onto `sys.path`, so the source's own `from common.X import y` lines run
unchanged on Kaggle, where the repository is absent. The output is deterministic (same sources,
same bytes) and carries a hash of its cells, so a hand-edited notebook is never overwritten
silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

from builders.generated import (
    INSTALL_MODULE,
    PYPROJECT,
    setup_cells,
    started_and_build_info_cell,
)
from builders.library import (
    CommonImport,
    ModuleSource,
    check_names_exist,
    find_common_imports,
    parse_python,
    python_source,
    resolve_modules,
)
from builders.metadata import (
    PLACEHOLDER_USERNAME,
    kaggle_username,
    kernel_metadata,
    validate_metadata,
    write_metadata,
)
from builders.parameters import cell_text, tagged_cells
from common.errors import UserError, exit_status
from common.provenance import git
from common.recipes import RECIPES_DIR, recipe_kernel, recipe_names

REPO = Path(__file__).resolve().parents[1]
SOURCES_DIR = "notebooks_src"
# A name starting with "_" is one of the builder's test fixtures, which live with the tests.
FIXTURES_DIR = Path("tests", "notebooks")
NOTEBOOKS_DIR = Path("build", "notebooks")
KERNELS_DIR = Path("build", "kernels")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# No "version": the notebook runs on whatever Python Kaggle has, and the bytes must not vary.
LANGUAGE_INFO = {
    "name": "python",
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
BUILD_KEY = "lse_build"  # notebook metadata written by this builder


TRAINING_SOURCE = "train"  # notebooks_src/train.py: built once per recipe
# Notebooks executed on this machine (`make report`), never pushed to Kaggle: no kernel metadata,
# not in the smoke or the Kaggle targets.
LOCAL_NOTEBOOKS = ("report",)


def recipe_notebooks(repo: Path = REPO) -> list[str]:
    """The recipes: one training notebook each."""
    return recipe_names(repo / RECIPES_DIR.name)


def notebook_names(repo: Path = REPO) -> list[str]:
    """Every recipe, and every other notebooks_src/*.py that runs on Kaggle (not the
    LOCAL_NOTEBOOKS). The builder's test fixtures (FIXTURES_DIR) are never listed."""
    others = [
        p.stem
        for p in (repo / SOURCES_DIR).glob("*.py")
        if not p.stem.startswith("_") and p.stem not in (TRAINING_SOURCE, *LOCAL_NOTEBOOKS)
    ]
    clash = sorted(set(others) & set(recipe_notebooks(repo)))
    if clash:
        raise UserError(
            f"{SOURCES_DIR}/{clash[0]}.py and recipes/{clash[0]}.toml share a name; rename one"
        )
    return sorted(recipe_notebooks(repo) + others)


def source_path(name: str, repo: Path = REPO) -> Path:
    if name in recipe_notebooks(repo):
        name = TRAINING_SOURCE
    folder = FIXTURES_DIR if name.startswith("_") else Path(SOURCES_DIR)
    path = repo / folder / f"{name}.py"
    if not path.is_file():
        known = ", ".join(notebook_names(repo)) or "none yet"
        raise UserError(f"{folder / name}.py not found; notebooks: {known}")
    return path


def cells_hash(cells: list) -> str:
    """Hash of the cells' types and sources: what a hand edit would change."""
    payload = json.dumps([[c["cell_type"], cell_text(c["source"])] for c in cells])
    return hashlib.sha256(payload.encode()).hexdigest()


def build_record(rel_source: str, modules: list[ModuleSource], repo: Path) -> dict:
    """What the notebook was built from: no timestamps, so rebuilding changes nothing."""
    library = [m.path.as_posix() for m in modules]
    files = [rel_source, PYPROJECT, *library]  # pyproject.toml: the install cell's requirements
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode() + b"\0" + (repo / rel).read_bytes() + b"\0")
    # The last commit touching these files, not HEAD: unrelated commits leave the notebook alone.
    commit = git(repo, "log", "-1", "--format=%H", "--", *files) or None
    status = git(repo, "status", "--porcelain", "--", *files)
    return {
        "source": rel_source,
        "library": library,
        "git_commit": commit,
        "sources_dirty": bool(status) if status is not None else None,
        "sources_sha256": digest.hexdigest(),
    }


def _cell_offsets(text: str, cells: list[NotebookNode]) -> list[int | None]:
    """Lines before each code cell's first line in the .py file (None where it is not found)."""
    offsets: list[int | None] = []
    cursor = 0
    for cell in cells:
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        index = text.find(first, cursor) if first else -1
        offsets.append(text[:index].count("\n") if index >= 0 else None)
        cursor = index + len(first) if index >= 0 else cursor
    return offsets


def _common_imports(
    cell: NotebookNode, number: int, offset: int | None, rel: str
) -> tuple[str, list[CommonImport]]:
    """The cell's `from common...` imports, with line numbers of the .py file."""
    label = rel if offset is not None else f"{rel} (code cell {number})"
    # ast counts from the cell's first line; messages refer to lines of the .py file.
    padded = "\n" * (offset or 0) + python_source(cell.source)
    return label, find_common_imports(parse_python(padded, label), label)


def assemble_notebook(name: str, repo: Path = REPO) -> NotebookNode:
    """The built notebook for notebooks_src/NAME.py, in memory."""
    path = source_path(name, repo)
    rel = path.relative_to(repo).as_posix()
    text = path.read_text(encoding="utf-8")
    source = jupytext.reads(text, fmt="py:percent")

    code = [(i, c) for i, c in enumerate(source.cells) if c.cell_type == "code"]
    params = [i for i in tagged_cells(source.cells) if source.cells[i].cell_type == "code"]
    if len(params) != 1:
        raise UserError(
            f"{rel}: needs exactly one parameters cell (found {len(params)}); mark it "
            '`# %% tags=["parameters"]`'
        )
    offsets = _cell_offsets(text, [c for _, c in code])
    importers: dict[str, str] = {INSTALL_MODULE: "the install cell"}
    found: list[tuple[str, list[CommonImport]]] = []
    for n, ((i, cell), offset) in enumerate(zip(code, offsets), 1):
        label, imports = _common_imports(cell, n, offset, rel)
        if imports and i <= params[0]:
            raise UserError(
                f"{label}: imports `common` at or before the parameters cell; move the import "
                "below it"
            )
        found.append((label, imports))
        for imp in imports:
            importers.setdefault(imp.module, f"{label}:{imp.lineno}")
    modules = resolve_modules(list(importers), repo, importers)
    by_name = {m.name: m for m in modules}
    for label, imports in found:
        check_names_exist(imports, by_name, label)

    if name in recipe_notebooks(repo):
        _fill_in_recipe(source, name, rel, params[0], repo)
        modules = [*modules, _recipe_file(name, repo)]
    record = build_record(rel, modules, repo)
    cells: list[NotebookNode] = []
    for i, cell in enumerate(source.cells):
        if i == code[0][0]:
            info = {
                k: record[k] for k in ("source", "git_commit", "sources_dirty", "sources_sha256")
            }
            cells.append(started_and_build_info_cell(name, info))
        cells.append(cell)
        if i == params[0]:
            cells.extend(setup_cells(modules, repo))
    return _finish(cells, record)


def _recipe_file(name: str, repo: Path) -> ModuleSource:
    """recipes/NAME.toml, shipped beside `common` in the library cell (`load_recipe` finds it)."""
    path = Path(RECIPES_DIR.name, f"{name}.toml")
    text = (repo / path).read_text(encoding="utf-8")
    return ModuleSource(name=path.as_posix(), path=path, text=text, imports=(), exports=frozenset())


def _fill_in_recipe(source: NotebookNode, name: str, rel: str, params: int, repo: Path) -> None:
    """The training notebook for one recipe: its title and description on top, its name in the
    parameters cell."""
    from common.recipes import load_recipe

    cfg = load_recipe(name, repo / RECIPES_DIR.name)
    title = recipe_kernel(name, repo / RECIPES_DIR.name)["title"]
    intro = next(c for c in source.cells if c.cell_type == "markdown")
    intro.source = (
        f"# {title}\n\n{cfg.description.strip()}\n\n"
        f"The recipe is `recipes/{name}.toml` (the whole configuration is printed below); this "
        f"notebook is built from `{rel}` by `python -m builders.build {name}` and trains through "
        f"the same code as `python -m common train --recipe {name}`."
    )
    cell = source.cells[params]
    lines = cell.source.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("recipe =")]
    if len(at) != 1:
        raise UserError(f"{rel}: the parameters cell needs one `recipe = ...` line")
    comment = lines[at[0]].partition("#")[2]
    lines[at[0]] = f"recipe = {name!r}" + (f"  #{comment}" if comment else "")
    cell.source = "\n".join(lines)


def _finish(cells: list[NotebookNode], record: dict) -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    for position, cell in enumerate(cells):
        cell = NotebookNode(
            {k: v for k, v in cell.items() if k not in ("id", "outputs", "execution_count")}
        )
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        seed = f"{position}\0{cell.cell_type}\0{cell_text(cell.source)}"
        # Ids from position and content: random ids (nbformat's default) break determinism.
        cell.id = hashlib.sha256(seed.encode()).hexdigest()[:16]
        nb.cells.append(cell)
    nb.metadata = nbformat.from_dict(
        {
            "kernelspec": dict(KERNELSPEC),
            "language_info": dict(LANGUAGE_INFO),
            BUILD_KEY: {**record, "cells_sha256": cells_hash(nb.cells)},
        }
    )
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def _refuse_hand_edits(out: Path, name: str, repo: Path) -> None:
    try:
        existing = json.loads(out.read_text(encoding="utf-8"))
        recorded = existing["metadata"][BUILD_KEY]["cells_sha256"]
        edited = recorded != cells_hash(existing["cells"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        edited = True  # not a notebook this builder wrote
    if edited:
        shown = out.relative_to(repo) if out.is_relative_to(repo) else out
        raise UserError(
            f"{shown} was edited by hand; move your edits to "
            f"{source_path(name, repo).relative_to(repo)} or pass --force"
        )


def build_notebook(
    name: str, *, force: bool = False, repo: Path = REPO, out_dir: Path | None = None
) -> Path:
    """Write build/notebooks/NAME.ipynb (unchanged bytes are not rewritten) and return its path."""
    nb = assemble_notebook(name, repo)
    out = (out_dir or repo / NOTEBOOKS_DIR) / f"{name}.ipynb"
    data = nbformat.writes(nb) + "\n"
    if out.exists():
        if out.read_text(encoding="utf-8") == data:
            return out
        if not force:
            _refuse_hand_edits(out, name, repo)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(data, encoding="utf-8")
    return out


def build_kernel(
    name: str, username: str | None = None, *, force: bool = False, repo: Path = REPO
) -> Path:
    """Write build/kernels/NAME/ (the notebook + validated kernel-metadata.json) for a push."""
    notebook = build_notebook(name, force=force, repo=repo)
    kernel_dir = repo / KERNELS_DIR / name
    kernel_dir.mkdir(parents=True, exist_ok=True)
    meta = kernel_metadata(name, username, code_file=notebook.name, repo=repo)
    shutil.copyfile(notebook, kernel_dir / notebook.name)
    origin = (
        f"recipes/{name}.toml" if name in recipe_notebooks(repo) else f"kernel-metadata/{name}.json"
    )
    validate_metadata(meta, kernel_dir, origin=origin)
    write_metadata(meta, kernel_dir)
    return kernel_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builders.build", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="notebooks to build (default: all)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite hand-edited notebooks")
    parser.add_argument(
        "--username", help="Kaggle user name for kernel ids (default: KAGGLE_USERNAME)"
    )
    args = parser.parse_args(argv)
    return exit_status(lambda: build_all(args.names, args.username, args.force))


def build_all(names: list[str], username: str | None, force: bool) -> int:
    """`python -m builders.build NAMES`: build each notebook (all when none are named)."""
    names = names or notebook_names()
    if not names:
        raise UserError(f"{SOURCES_DIR}/ has no notebook sources (*.py not starting with '_')")
    for name in names:
        if name in LOCAL_NOTEBOOKS:  # executed here by `make report`, never pushed
            print(f"{build_notebook(name, force=force).relative_to(REPO)}: local notebook")
            continue
        kernel_dir = build_kernel(name, username, force=force)
        meta = json.loads((kernel_dir / "kernel-metadata.json").read_text(encoding="utf-8"))
        nb = json.loads((kernel_dir / f"{name}.ipynb").read_text(encoding="utf-8"))
        n_lib = len(nb["metadata"][BUILD_KEY]["library"])
        print(
            f"{NOTEBOOKS_DIR / name}.ipynb: {len(nb['cells'])} cells, {n_lib} library "
            f"modules; {KERNELS_DIR / name}/ -> {meta['id']}"
        )
    if kaggle_username(username) is None:
        print(
            f"note: no Kaggle user name, so kernel ids use {PLACEHOLDER_USERNAME}; set "
            "KAGGLE_USERNAME (or pass --username) before pushing"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
