"""Recipes: one TOML file per experiment in recipes/, setting the fields of a `RunConfig`
(common.config) that differ from the defaults, and overrides by dotted name on top of them.

    cfg = load_recipe("lite")                                  # recipes/lite.toml
    cfg = apply_overrides(cfg, {"train.epochs": 2, "data.source": "synthetic"})
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from common.config import SECTIONS, RunConfig, config_dict, config_from_dict
from common.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
KERNEL_TABLE = "kernel"  # a recipe's Kaggle settings (title, slug); not part of the run


def recipe_names(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    return sorted(p.stem for p in recipes_dir.glob("*.toml"))


def recipe_path(name: str, recipes_dir: Path = RECIPES_DIR) -> Path:
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return path
    path = recipes_dir / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(recipe_names(recipes_dir)) or "none"
        raise UserError(f"{name}: no recipe {path}; recipes: {known}")
    return path


def recipe_values(name: str, recipes_dir: Path = RECIPES_DIR) -> dict[str, Any]:
    """A recipe file's own values (what it sets, not the defaults it leaves alone)."""
    path = recipe_path(name, recipes_dir)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the file") from None
    values.setdefault("recipe", path.stem)
    return values


def load_recipe(name: str, recipes_dir: Path = RECIPES_DIR) -> RunConfig:
    """recipes/NAME.toml (or a .toml path) on top of the defaults."""
    path = recipe_path(name, recipes_dir)
    values = recipe_values(name, recipes_dir)
    values.pop(KERNEL_TABLE, None)
    return config_from_dict(values, where=str(path), source=str(path))


def recipe_kernel(name: str, recipes_dir: Path = RECIPES_DIR) -> dict[str, Any]:
    """The recipe's [kernel] table: its Kaggle title, slug and extra metadata."""
    kernel = recipe_values(name, recipes_dir).get(KERNEL_TABLE, {})
    if not isinstance(kernel, dict) or not kernel.get("title") or not kernel.get("slug"):
        raise UserError(f"{recipe_path(name, recipes_dir)}: [kernel] needs a title and a slug")
    return kernel


def parse_override(item: str) -> tuple[str, Any]:
    """ "section.key=value" -> (key path, value); values are JSON when they parse, else text."""
    key, sep, text = item.partition("=")
    if not sep or "." not in key:
        raise UserError(f"--set {item!r}: use SECTION.KEY=VALUE, e.g. --set train.lr=2e-3")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return key.strip(), value


def apply_overrides(
    cfg: RunConfig, overrides: dict[str, Any], where: str = "override"
) -> RunConfig:
    """A copy of `cfg` with dotted-name fields replaced ({"train.lr": 2e-3, "model.settings.width": 32})."""
    values = config_dict(cfg)
    for key, value in overrides.items():
        parts = key.split(".")
        if parts[0] not in SECTIONS and key not in ("recipe", "description"):
            raise UserError(f"{where} {key!r}: unknown section; sections: {', '.join(SECTIONS)}")
        target = values
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise UserError(f"{where} {key!r}: {part!r} is not a section")
            target = target[part]
        target[parts[-1]] = value
    return config_from_dict(values, where=where)
