"""A notebook's papermill parameters: which cells hold them and what they assign.

The one reader of the `parameters` tag for the builder (exactly one such cell), the smoke run
(the names it may override) and the Kaggle push (the values it records and may inject). Works on
nbformat notebooks and on notebooks read as plain JSON.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"  # papermill's (and `builders.kaggle push`'s) overrides


def cell_text(source: str | list[str]) -> str:
    """A cell's source as one string (JSON notebooks may store it as a list of lines)."""
    return "".join(source) if isinstance(source, list) else source


def tagged_cells(cells: Sequence[Mapping[str, Any]], tag: str = PARAMETERS_TAG) -> list[int]:
    """Indices of the cells tagged `tag`."""
    return [i for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])]


def parameters_cell(cells: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The (first) cell tagged `parameters`, if any."""
    found = tagged_cells(cells)
    return cells[found[0]] if found else None


def parameter_values(cells: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Literal assignments of the parameters cell and any injected override cell, in order."""
    params: dict[str, Any] = {}
    for i in sorted({*tagged_cells(cells), *tagged_cells(cells, INJECTED_TAG)}):
        try:
            tree = ast.parse(cell_text(cells[i].get("source", "")))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                try:
                    value = ast.literal_eval(node.value) if node.value is not None else None
                except ValueError:
                    continue
                for t in targets:
                    if isinstance(t, ast.Name):
                        params[t.id] = value
    return params
