"""The notebook builder: which modules it inlines, in what order, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

from builders.build import (
    KERNELSPEC,
    assemble_notebook,
    build_kernel,
    build_notebook,
    notebook_names,
)
from builders.inline import library_modules, resolve_modules
from common.errors import UserError

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
}


def make_repo(root: Path, source: str = SOURCE, modules: dict[str, str] | None = None) -> Path:
    """A miniature repository: common/ modules, one notebook source, kernel metadata."""
    (root / "common").mkdir(parents=True)
    (root / "common" / "__init__.py").write_text('"""Package."""\n')
    for name, text in (MODULES if modules is None else modules).items():
        path = root / "common" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "notebooks_src").mkdir()
    (root / "notebooks_src" / "demo.py").write_text(source)
    (root / "kernel-metadata").mkdir()
    for name in ("_defaults.json", "crn.json"):
        text = (REPO / "kernel-metadata" / name).read_text()
        (root / "kernel-metadata" / name.replace("crn", "demo")).write_text(text)
    return root


def sources(nb) -> list[str]:
    return [c.source for c in nb.cells]


def test_inlines_needed_modules_in_dependency_order(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    nb = assemble_notebook("demo", repo)
    headings = [s.splitlines()[0] for s in sources(nb) if s.startswith("### Library: ")]
    # errors before alpha before beta; gamma (a lazy import) after beta; unused.py left out.
    assert headings == [
        "### Library: `common/errors.py`",
        "### Library: `common/alpha.py`",
        "### Library: `common/beta.py`",
        "### Library: `common/gamma.py`",
    ]
    assert nb.metadata.lse_build.library == [
        "common/errors.py",
        "common/alpha.py",
        "common/beta.py",
        "common/gamma.py",
    ]
    heading = next(s for s in sources(nb) if "common/beta.py" in s)
    assert "Beta: builds on alpha." in heading


def test_library_goes_after_parameters_and_before_first_use(tmp_path: Path) -> None:
    nb = assemble_notebook("demo", make_repo(tmp_path))
    srcs = sources(nb)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    pip = next(i for i, s in enumerate(srcs) if s.startswith("!pip install"))
    library = [i for i, c in enumerate(nb.cells) if "library" in c.metadata.get("tags", [])]
    use = next(i for i, s in enumerate(srcs) if s.startswith("import numpy as np\n\n# inlined"))
    # The pip cell stays before the library: on Kaggle, library imports need what it installs.
    assert params < pip < min(library) and max(library) < use
    info = next(i for i, s in enumerate(srcs) if "BUILD_INFO = " in s)
    assert info < params  # the first code cell records the build
    assert all(nb.cells[i].metadata["jupyter"]["source_hidden"] for i in library)


def test_common_imports_are_rewritten_for_one_namespace(tmp_path: Path) -> None:
    nb = assemble_notebook("demo", make_repo(tmp_path))
    code = "\n".join(s for s in sources(nb))
    assert "from common." not in code.replace("# inlined above: from common.", "")
    assert "twice = beta_twice" in code  # an alias becomes an assignment
    beta = next(s for s in sources(nb) if "def beta_twice" in s)
    # A lazy import inside a function becomes `pass`, keeping the block valid.
    assert "    # inlined above: from common.gamma import gamma_unused\n    pass" in beta
    assert beta.splitlines()[2] == "from __future__ import annotations"


def test_built_notebook_runs_as_one_namespace(tmp_path: Path) -> None:
    """Executing the code cells in order (no repository on the path) gives the right result."""
    nb = assemble_notebook("demo", make_repo(tmp_path))
    namespace: dict = {"get_ipython": lambda: type("S", (), {"system": lambda *a: None})()}
    for cell in nb.cells:
        if cell.cell_type == "code":
            code = cell.source.replace("!pip install -q something", "")
            exec(compile(code, "<cell>", "exec"), namespace)
    assert namespace["result"] == 2
    assert namespace["BUILD_INFO"]["source"] == "notebooks_src/demo.py"


def test_output_is_deterministic(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = build_notebook("demo", repo=repo, out_dir=tmp_path / "a").read_bytes()
    second = build_notebook("demo", repo=repo, out_dir=tmp_path / "b").read_bytes()
    assert first == second
    nb = json.loads(first)
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == len(ids)
    # The recorded hash follows the sources.
    (repo / "common" / "alpha.py").write_text(MODULES["alpha.py"] + "\nEXTRA = 1\n")
    third = json.loads(build_notebook("demo", repo=repo, out_dir=tmp_path / "c").read_bytes())
    assert (
        third["metadata"]["lse_build"]["sources_sha256"]
        != nb["metadata"]["lse_build"]["sources_sha256"]
    )


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


def collision_modules(extra: str) -> dict[str, str]:
    return {**MODULES, "gamma.py": MODULES["gamma.py"] + extra}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "\ndef alpha_one():\n    return 5\n",
            "common/alpha.py and common/gamma.py both define top-level `alpha_one`",
        ),
        ("\nSHARED = 8000\n", "common/alpha.py and common/gamma.py both define top-level `SHARED`"),
        ("\nfrom math import pi as np\n", "both define top-level `np`"),
    ],
)
def test_name_collisions_fail_naming_both_files(tmp_path: Path, extra: str, message: str) -> None:
    repo = make_repo(tmp_path, modules=collision_modules(extra))
    with pytest.raises(UserError, match=message):
        assemble_notebook("demo", repo)


def test_identical_definitions_are_not_collisions(tmp_path: Path) -> None:
    # SHARED = 16000 in alpha and beta; `import numpy as np` in alpha and the notebook.
    extra = "\nimport numpy as np\nfrom numpy import linalg\nimport numpy.linalg as linalg\n"
    assemble_notebook("demo", make_repo(tmp_path, modules=collision_modules(extra)))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("import common.alpha", r"common/gamma.py:3: `import common.alpha` cannot be inlined"),
        (
            "from common import alpha",
            r"common/gamma.py:3: `from common import alpha` cannot be inlined",
        ),
        ("from .alpha import alpha_one", r"common/gamma.py:3: relative import"),
        ("from common.alpha import *", r"common/gamma.py:3: .*import \*` cannot be inlined"),
        ("from common.cli import main", r"common/gamma.py:3: common.cli is command-line code"),
        (
            "from common.alpha import alpha_two",
            r"common/gamma.py:3: common/alpha.py defines no top-level `alpha_two`",
        ),
        (
            "from common.nowhere import x",
            r"common/gamma.py:3: no module common.nowhere \(no common/nowhere.py\)",
        ),
        (
            "from common.alpha import alpha_one; X = 1",
            r"common/gamma.py:3: put the `from common...` import on its own line",
        ),
        ("HERE = __file__", r"common/gamma.py:3: uses __file__"),
        (
            'if __name__ == "__main__":\n    pass',
            r"common/gamma.py:3: an `if __name__ == ...` block",
        ),
    ],
)
def test_refuses_imports_it_cannot_inline(tmp_path: Path, line: str, message: str) -> None:
    modules = {
        **MODULES,
        "gamma.py": f'"""Gamma."""\n\n{line}\n\n\ndef gamma_unused():\n    return 0\n',
    }
    with pytest.raises(UserError, match=message) as info:
        assemble_notebook("demo", make_repo(tmp_path, modules=modules))
    assert "\n" not in str(info.value)


def test_refuses_import_cycle(tmp_path: Path) -> None:
    modules = {
        **MODULES,
        "errors.py": "from common.beta import beta_twice\n\nclass UserError(Exception):\n    pass\n",
    }
    with pytest.raises(UserError, match="import cycle between common modules"):
        assemble_notebook("demo", make_repo(tmp_path, modules=modules))


def test_notebook_names_in_messages_carry_source_lines(tmp_path: Path) -> None:
    source = SOURCE.replace(
        "from common.alpha import alpha_one", "from common.alpha import alpha_nope"
    )
    line = source.splitlines().index("from common.alpha import alpha_nope") + 1
    with pytest.raises(
        UserError, match=f"notebooks_src/demo.py:{line}: common/alpha.py defines no"
    ):
        assemble_notebook("demo", make_repo(tmp_path, source=source))


def test_notebook_may_not_replace_a_library_name(tmp_path: Path) -> None:
    source = SOURCE + "\n# %%\nSHARED = 44100\n"
    line = source.splitlines().index("SHARED = 44100") + 1
    with pytest.raises(
        UserError, match=f"demo.py:{line}: top-level `SHARED` is also defined in common/alpha.py"
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
    assert meta["id"] == "someone/lightweight-speech-enhancement-crn"
    assert (kernel_dir / meta["code_file"]).is_file()


def test_all_common_modules_inline_together_without_collisions() -> None:
    """Guards everyone's modules: the whole of common/ must share one namespace."""
    names = library_modules(REPO)
    assert "common.audio" in names and "common.cli" not in names
    assert not any(n.startswith("common.commands") for n in names)
    inlined = [m.name for m in resolve_modules(names, REPO)]
    assert sorted(inlined) == sorted(names)


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
    assert nb["metadata"]["lse_build"]["source"] == f"notebooks_src/{name}.py"


def test_example_source_is_excluded_from_notebook_names() -> None:
    assert "_example" not in notebook_names(REPO)


def test_cli_reports_one_line_errors(capsys) -> None:
    from builders.build import main

    assert main(["no_such_notebook"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: notebooks_src/no_such_notebook.py not found; notebooks: ")
    assert err.count("\n") == 1
