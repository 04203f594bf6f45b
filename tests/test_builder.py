"""The notebook builder: which modules it packs, the cells it adds, and what it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import pytest

from builders.build import (
    KERNELSPEC,
    assemble_notebook,
    build_kernel,
    build_notebook,
    notebook_names,
    source_path,
)
from builders.generated import (
    LIBRARY_TAG,
    STARTED_VARIABLE,
    install_requirements,
    library_files,
)
from builders.library import library_modules, python_source, resolve_modules
from builders.parameters import parameter_values
from common.errors import UserError
from common.recipes import load_recipe, recipe_kernel, recipe_names

REPO = Path(__file__).resolve().parents[1]

SOURCE = """\
# %% [markdown]
# # Title
# Intro text.

# %% tags=["parameters"]
epochs = 1
output_dir = "out"

# %%
!pip install -q something
value = 2

# %%
import numpy as np

from common.beta import beta_twice as twice
from common.alpha import alpha_one

# %%
result = twice(alpha_one())
"""

MODULES = {
    "errors.py": '"""Errors."""\n\nclass UserError(Exception):\n    pass\n',
    "alpha.py": (
        '"""Alpha: the base."""\n\nfrom __future__ import annotations\n\n'
        "import numpy as np\n\nfrom common.errors import UserError\n\nSHARED = 16000\n\n\n"
        "def alpha_one() -> int:\n    return 1\n"
    ),
    "beta.py": (
        '"""Beta: builds on alpha."""\n\nfrom __future__ import annotations\n\n'
        "from common.alpha import alpha_one\n\nSHARED = 16000\n\n\n"
        "def beta_twice(x: int) -> int:\n"
        "    from common.gamma import gamma_unused\n\n"
        "    return 2 * x + alpha_one() - 1\n"
    ),
    "gamma.py": '"""Gamma: only imported lazily."""\n\n\ndef gamma_unused():\n    return 0\n',
    "unused.py": '"""Never imported."""\n\nUNUSED = 1\n',
    "env.py": (
        '"""The install cell\'s helper."""\n\n\ndef install_missing(requirements):\n    return []\n'
    ),
}
PYPROJECT = """\
[project]
name = "demo"
dependencies = ["torch>=2.4", "numpy>=1.24,<3", "python-slugify>=8"]
"""


def make_repo(root: Path, source: str = SOURCE, modules: dict[str, str] | None = None) -> Path:
    """A miniature repository: common/ modules, one notebook source, kernel metadata."""
    (root / "common").mkdir(parents=True)
    (root / "common" / "__init__.py").write_text('"""Package."""\n')
    (root / "pyproject.toml").write_text(PYPROJECT)
    for name, text in (MODULES if modules is None else modules).items():
        path = root / "common" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "notebooks_src").mkdir()
    (root / "notebooks_src" / "demo.py").write_text(source)
    (root / "kernel-metadata").mkdir()
    for name in ("_defaults.json", "vad.json"):
        text = (REPO / "kernel-metadata" / name).read_text()
        (root / "kernel-metadata" / name.replace("vad", "demo")).write_text(text)
    return root


def sources(nb) -> list[str]:
    return [c.source for c in nb.cells]


def test_packs_the_needed_modules_and_nothing_else(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    nb = assemble_notebook("demo", repo)
    # alpha and beta (imported), errors (by alpha), gamma (lazily, by beta), env (the install
    # cell), the package itself; unused.py left out.
    shipped = [f"common/{n}.py" for n in ("__init__", "alpha", "beta", "env", "errors", "gamma")]
    assert nb.metadata.lse_build.library == shipped
    files = library_files(nb)
    assert sorted(files) == shipped
    assert all(files[rel] == (repo / rel).read_text() for rel in shipped)


def test_packages_of_a_nested_module_are_shipped(tmp_path: Path) -> None:
    modules = {**MODULES, "sub/__init__.py": "from common.sub.deep import DEEP\n"}
    modules["sub/deep.py"] = "DEEP = 3\n"
    source = SOURCE.replace("import numpy as np\n", "from common.sub.deep import DEEP\n")
    nb = assemble_notebook("demo", make_repo(tmp_path, source=source, modules=modules))
    assert {"common/sub/__init__.py", "common/sub/deep.py"} <= set(nb.metadata.lse_build.library)


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_generated_cells_and_the_sources_own_cells_in_order(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    nb = assemble_notebook("demo", repo)
    code = code_cells(nb)
    # 1: start time + BUILD_INFO, 2: parameters, 3: library (collapsed), 4: install, then the
    # source's own cells exactly as written (their `from common...` lines included).
    assert f'os.environ["{STARTED_VARIABLE}"] = repr(time.time())' in code[0].source
    assert "BUILD_INFO = {" in code[0].source
    assert "parameters" in code[1].metadata["tags"]
    assert code[2].metadata == {
        "_kg_hide-input": True,  # Kaggle's pages show it folded
        "jupyter": {"source_hidden": True},
        "tags": [LIBRARY_TAG],
    }
    assert "from common.env import install_missing" in code[3].source
    assert [c for c in nb.cells if LIBRARY_TAG in c.metadata.get("tags", [])] == [code[2]]
    source_cells = [c.source for c in jupytext.reads(SOURCE, fmt="py:percent").cells]
    own = [c.source for c in nb.cells if c.source in source_cells]
    assert own == source_cells
    # Set-up is explained once, in a markdown cell right before the library cell.
    position = nb.cells.index(code[2])
    assert nb.cells[position - 1].source.startswith("## Set-up")


def test_install_cell_comes_from_pyproject(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert install_requirements(repo) == {
        "numpy": "numpy>=1.24,<3",
        "python_slugify": "python-slugify>=8",
    }  # torch is never installed
    install = code_cells(assemble_notebook("demo", repo))[3].source
    assert '"numpy": "numpy>=1.24,<3",' in install and "torch" not in install.split("\n", 1)[1]


def test_bad_pyproject_is_one_line_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(UserError, match=r"pyproject.toml: cannot read \[project\] dependencies"):
        assemble_notebook("demo", repo)


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "notebooks_src").glob("[!_]*.py")))
def test_notebook_sources_carry_no_install_list(name: str) -> None:
    text = (REPO / "notebooks_src" / f"{name}.py").read_text()
    for module, requirement in install_requirements(REPO).items():
        assert f'"{module}"' not in text and requirement not in text, f"{name}.py copies {module}"


def run_built_notebook(nb, cwd: Path, env: dict[str, str] | None = None) -> str:
    """The code cells as one script, run by a fresh interpreter (stdout back)."""
    cells = [python_source(c.source) for c in code_cells(nb)]
    script = "\n".join(cells).replace("get_ipython().system('pip install -q something')", "")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script + "\nprint('RESULT', result, os.environ['LSE_NOTEBOOK_STARTED'])",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_built_notebook_imports_its_own_copy_of_common(tmp_path: Path) -> None:
    """In a fresh interpreter, with the repository's `common` installed, the packed copy wins."""
    nb = assemble_notebook("demo", make_repo(tmp_path / "repo"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    environ = {k: v for k, v in os.environ.items() if k != STARTED_VARIABLE}
    before = time.time()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", environ)
        out = run_built_notebook(nb, cwd)
    assert "common: 6 files written to " in out
    result, started = out.split("RESULT ")[1].split()
    assert result == "2"  # beta_twice(alpha_one()) from the demo's common, not the repository's
    assert before <= float(started) <= time.time()
    assert list(cwd.iterdir()) == []  # nothing is written into the working (output) folder


def test_start_time_already_set_is_kept(tmp_path: Path) -> None:
    nb = assemble_notebook("demo", make_repo(tmp_path / "repo"))
    out = run_built_notebook(nb, tmp_path, env={STARTED_VARIABLE: "123.5"})
    assert out.split("RESULT ")[1].split() == ["2", "123.5"]


def test_output_is_deterministic(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = build_notebook("demo", repo=repo, out_dir=tmp_path / "a").read_bytes()
    second = build_notebook("demo", repo=repo, out_dir=tmp_path / "b").read_bytes()
    assert first == second
    nb = json.loads(first)
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == len(ids)
    # The recorded hash follows the sources: a library module, pyproject.toml (the install cell).
    hashes = {nb["metadata"]["lse_build"]["sources_sha256"]}
    changes = {
        "common/alpha.py": MODULES["alpha.py"] + "\nEXTRA = 1\n",
        "pyproject.toml": PYPROJECT.replace("numpy>=1.24", "numpy>=1.25"),
    }
    for i, (rel, text) in enumerate(changes.items()):
        (repo / rel).write_text(text)
        built = build_notebook("demo", repo=repo, out_dir=tmp_path / str(i)).read_bytes()
        hashes.add(json.loads(built)["metadata"]["lse_build"]["sources_sha256"])
    assert len(hashes) == 3


def test_notebook_has_kernelspec_and_language_info(tmp_path: Path) -> None:
    nb = json.loads(
        build_notebook("demo", repo=make_repo(tmp_path / "r"), out_dir=tmp_path).read_text()
    )
    assert nb["metadata"]["kernelspec"] == KERNELSPEC
    assert nb["metadata"]["language_info"]["name"] == "python"
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] == 5
    assert all(c["outputs"] == [] for c in nb["cells"] if c["cell_type"] == "code")


def test_hand_edited_notebook_is_not_overwritten(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    out = build_notebook("demo", repo=repo, out_dir=tmp_path)
    build_notebook("demo", repo=repo, out_dir=tmp_path)  # an unchanged rebuild is fine
    nb = json.loads(out.read_text())
    nb["cells"][-1]["source"] = "result = 3  # tuned by hand\n"
    out.write_text(json.dumps(nb))
    (repo / "notebooks_src" / "demo.py").write_text(SOURCE + "\n# %%\nprint(result)\n")
    with pytest.raises(
        UserError, match="edited by hand; move your edits to notebooks_src/demo.py or pass --force"
    ):
        build_notebook("demo", repo=repo, out_dir=tmp_path)
    build_notebook("demo", repo=repo, out_dir=tmp_path, force=True)
    assert "print(result)" in out.read_text()


def test_outputs_from_a_run_do_not_count_as_hand_edits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    out = build_notebook("demo", repo=repo, out_dir=tmp_path)
    nb = json.loads(out.read_text())
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    out.write_text(json.dumps(nb))
    build_notebook("demo", repo=repo, out_dir=tmp_path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("import common.alpha", r"common/gamma.py:3: write `from common.alpha import NAME`"),
        ("from common import alpha", r"common/gamma.py:3: `from common import alpha`; write"),
        ("from .alpha import alpha_one", r"common/gamma.py:3: relative import"),
        ("from common.alpha import *", r"common/gamma.py:3: .*import \*`; import the names"),
        ("from common.cli import main", r"common/gamma.py:3: common.cli is command-line code"),
        (
            "from common.alpha import alpha_two",
            r"common/gamma.py:3: common/alpha.py defines no top-level `alpha_two`",
        ),
        (
            "from common.nowhere import x",
            r"common/gamma.py:3: no module common.nowhere \(no common/nowhere.py\)",
        ),
        ('X = importlib.import_module("common.alpha")', r"common/gamma.py:3: imports a common"),
    ],
)
def test_refuses_imports_it_cannot_follow(tmp_path: Path, line: str, message: str) -> None:
    modules = {
        **MODULES,
        "gamma.py": f'"""Gamma."""\n\n{line}\n\n\ndef gamma_unused():\n    return 0\n',
    }
    with pytest.raises(UserError, match=message) as info:
        assemble_notebook("demo", make_repo(tmp_path, modules=modules))
    assert "\n" not in str(info.value)


def test_an_import_cycle_is_shipped_as_python_would_run_it(tmp_path: Path) -> None:
    modules = {
        **MODULES,
        "errors.py": "from common.beta import beta_twice\n\nclass UserError(Exception):\n    pass\n",
    }
    nb = assemble_notebook("demo", make_repo(tmp_path, modules=modules))
    assert "common/beta.py" in nb.metadata.lse_build.library


def test_notebook_names_in_messages_carry_source_lines(tmp_path: Path) -> None:
    source = SOURCE.replace(
        "from common.alpha import alpha_one", "from common.alpha import alpha_nope"
    )
    line = source.splitlines().index("from common.alpha import alpha_nope") + 1
    with pytest.raises(
        UserError, match=f"notebooks_src/demo.py:{line}: common/alpha.py defines no"
    ):
        assemble_notebook("demo", make_repo(tmp_path, source=source))


def test_common_import_before_parameters_is_refused(tmp_path: Path) -> None:
    source = SOURCE.replace(
        '# %% tags=["parameters"]',
        '# %%\nfrom common.alpha import alpha_one\n\n# %% tags=["parameters"]',
    )
    with pytest.raises(UserError, match="imports `common` at or before the parameters cell"):
        assemble_notebook("demo", make_repo(tmp_path, source=source))


def test_missing_parameters_cell_is_refused(tmp_path: Path) -> None:
    source = SOURCE.replace(' tags=["parameters"]', "")
    with pytest.raises(
        UserError, match=r'needs exactly one parameters cell .*tags=\["parameters"\]'
    ):
        assemble_notebook("demo", make_repo(tmp_path, source=source))


def test_unknown_notebook_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="notebooks_src/nope.py not found; notebooks: demo"):
        assemble_notebook("nope", make_repo(tmp_path))


def test_build_kernel_writes_valid_metadata(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    kernel_dir = build_kernel("demo", "someone", repo=make_repo(tmp_path))
    meta = json.loads((kernel_dir / "kernel-metadata.json").read_text())
    assert meta["id"] == "someone/lightweight-speech-enhancement-vad"
    assert (kernel_dir / meta["code_file"]).is_file()


def test_every_library_module_can_be_shipped() -> None:
    """Each module's `common` imports name modules and globals that exist."""
    names = library_modules(REPO)
    assert "common.audio" in names and "common.cli" not in names
    assert not any(n.startswith("common.commands") for n in names)
    shipped = {m.name for m in resolve_modules(names, REPO)}
    assert set(names) <= shipped


@pytest.mark.parametrize(
    "path", sorted((REPO / "notebooks_src").glob("*.py")), ids=lambda p: p.stem
)
def test_sources_round_trip_through_jupytext(path: Path) -> None:
    text = path.read_text()
    nb = jupytext.reads(text, fmt="py:percent")
    again = jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")
    assert [(c.cell_type, c.source) for c in again.cells] == [
        (c.cell_type, c.source) for c in nb.cells
    ]
    assert jupytext.writes(nb, fmt="py:percent") == text


@pytest.mark.parametrize("name", ["_example", *notebook_names(REPO)])
def test_repository_sources_build(name: str, tmp_path: Path) -> None:
    out = build_notebook(name, out_dir=tmp_path)
    nb = json.loads(out.read_text())
    assert nb["metadata"]["lse_build"]["source"] == source_path(name).relative_to(REPO).as_posix()
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert f'os.environ["{STARTED_VARIABLE}"] = repr(time.time())' in "".join(code[0]["source"])
    library = [c for c in code if LIBRARY_TAG in c["metadata"].get("tags", [])]
    assert len(library) == 1 and library_files(nb)["common/audio.py"].startswith('"""')


def test_example_source_is_excluded_from_notebook_names() -> None:
    assert "_example" not in notebook_names(REPO)


@pytest.mark.parametrize("recipe", recipe_names())
def test_each_recipe_is_one_notebook_built_from_the_training_source(recipe: str, tmp_path) -> None:
    nb = json.loads(build_notebook(recipe, out_dir=tmp_path).read_text())
    intro = "".join(nb["cells"][0]["source"])
    assert intro.startswith(f"# {recipe_kernel(recipe)['title']}\n")
    assert load_recipe(recipe).description.strip() in intro
    assert parameter_values(nb["cells"])["recipe"] == recipe
    shipped = library_files(nb)  # the recipe travels with the notebook, like `common`
    assert shipped[f"recipes/{recipe}.toml"] == (REPO / "recipes" / f"{recipe}.toml").read_text()
    assert "train" not in notebook_names(REPO)  # the source itself is not a notebook


def test_no_block_repeats_between_the_notebook_sources() -> None:
    """One training source for every recipe: nothing left to copy between sources."""
    texts = {p.name: p.read_text().splitlines() for p in (REPO / "notebooks_src").glob("*.py")}
    seen: dict[tuple[str, ...], str] = {}
    for name, lines in sorted(texts.items()):
        code = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
        for i in range(len(code) - 5):
            block = tuple(code[i : i + 6])
            other = seen.setdefault(block, name)
            assert other == name, f"{name} and {other} share six lines: {block[0]!r} ..."


def test_cli_reports_one_line_errors(capsys) -> None:
    from builders.build import main

    assert main(["no_such_notebook"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: notebooks_src/no_such_notebook.py not found; notebooks: ")
    assert err.count("\n") == 1
