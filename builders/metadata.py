"""Kaggle `kernel-metadata.json`: assembled from kernel-metadata/ and checked like the Kaggle CLI.

`kernel-metadata/_defaults.json` holds what every notebook shares (GPU, internet, the dataset);
`kernel-metadata/NAME.json` holds its `slug`, `title` and optional extras. The checks mirror
`KaggleApi.kernels_push` in kaggle 2.2.5 (kaggle/api/kaggle_api_extended.py), so a bad field fails
here, in one line, instead of after an upload.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from slugify import slugify

from common.errors import UserError
from common.recipes import RECIPES_DIR, recipe_kernel

REPO = Path(__file__).resolve().parents[1]
METADATA_DIR = "kernel-metadata"
DEFAULTS_FILE = "_defaults.json"
# Used only so `make build` works without an account; pushing refuses it (require_username).
PLACEHOLDER_USERNAME = "KAGGLE-USERNAME-NOT-SET"
# The user's own speech + noise dataset: `make upload-data` creates it under this slug unless
# told otherwise, and a recipe attaches it by listing the bare slug in `[kernel] dataset_sources`.
OWN_DATASET_SLUG = "lse-speech-noise"

BOOLEAN_KEYS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")
LIST_KEYS = (
    "dataset_sources",
    "competition_sources",
    "kernel_sources",
    "model_sources",
    "keywords",
)
KNOWN_KEYS = frozenset(
    ("id", "id_no", "title", "code_file", "language", "kernel_type", "docker_image")
    + ("docker_image_pinning_type", "machine_shape")
    + BOOLEAN_KEYS
    + LIST_KEYS
)
LANGUAGES = ("python", "r", "rmarkdown")
KERNEL_TYPES = ("script", "notebook")
PINNING_TYPES = ("original", "latest")
# The accelerators the kaggle CLI's docs/kernels.md lists, less the retired ones: Kaggle silently
# runs a retired shape on its default instead (kaggle 2.2.5 warns), so a push asking for one would
# not get what it says.
MACHINE_SHAPES = (
    "NvidiaTeslaT4",
    "NvidiaTeslaT4Highmem",
    "NvidiaL4",
    "NvidiaL4X1",
    "NvidiaTeslaA100",
    "NvidiaH100",
    "TpuV5E8",
    "TpuV6E8",
)
RETIRED_MACHINE_SHAPES = {
    "NvidiaTeslaP100": "NvidiaTeslaT4",
    "TpuV38": "TpuV5E8",
    "Tpu1VmV38": "TpuV5E8",
}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; create it (see {METADATA_DIR}/crn.json)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); fix the file") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: must hold a JSON object {{...}}; fix the file")
    return data


def kaggle_username(explicit: str | None = None) -> str | None:
    """`explicit`, else $KAGGLE_USERNAME, else "username" in kaggle.json; None when none is set.

    kaggle.json is read as JSON: importing the kaggle package would demand credentials.
    """
    if explicit:
        return explicit
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    config_dirs = [os.environ.get("KAGGLE_CONFIG_DIR"), "~/.kaggle", "~/.config/kaggle"]
    for folder in filter(None, config_dirs):
        path = Path(folder).expanduser() / "kaggle.json"
        if path.is_file():
            try:
                name = json.loads(path.read_text(encoding="utf-8")).get("username")
            except (json.JSONDecodeError, AttributeError):
                raise UserError(
                    f"{path}: not valid kaggle.json; re-download it from Kaggle"
                ) from None
            if name:
                return str(name)
    return None


def kernel_metadata(
    name: str, username: str | None = None, *, code_file: str | None = None, repo: Path = REPO
) -> dict:
    """The kernel-metadata.json content for notebook `name` (not yet validated).

    Without a username anywhere the id uses PLACEHOLDER_USERNAME: fine for building, refused
    by `require_username` before a push.
    """
    folder = repo / METADATA_DIR
    meta = _read_json(folder / DEFAULTS_FILE)
    specific_path = folder / f"{name}.json"
    recipe = repo / RECIPES_DIR.name / f"{name}.toml"
    if not specific_path.is_file() and recipe.is_file():
        # A training notebook's title and slug (and any extra sources) live in its recipe.
        specific_path, specific = recipe, dict(recipe_kernel(name, recipe.parent))
    else:
        specific = _read_json(specific_path)
    for key in ("slug", "title"):
        if not isinstance(specific.get(key), str) or not specific[key]:
            raise UserError(f'{specific_path}: needs a "{key}" string; add it')
    user = kaggle_username(username) or PLACEHOLDER_USERNAME
    slug = specific.pop("slug")
    meta.update(specific)
    meta["id"] = f"{user}/{slug}"
    meta["code_file"] = code_file or f"{name}.ipynb"
    # A bare slug in kernel_sources or dataset_sources means "my own notebook / dataset": the
    # owner is only known now.
    for key in ("kernel_sources", "dataset_sources"):
        sources = meta.get(key, [])
        if isinstance(sources, list):
            meta[key] = [
                f"{user}/{s}" if isinstance(s, str) and "/" not in s else s for s in sources
            ]
    return meta


def _fail(where: str, problem: str) -> UserError:
    return UserError(f"{where}: {problem}")


def _check_kernel_string(where: str, key: str, value: str) -> None:
    parts = value.split("/")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise _fail(where, f"{key} entry {value!r} must look like 'owner/kernel-slug'")
    if len(parts[1]) < 5:
        raise _fail(where, f"{key} entry {value!r}: the kernel slug must be at least 5 characters")
    if len(parts) == 3 and not parts[2]:
        raise _fail(where, f"{key} entry {value!r}: the version after the last '/' is empty")


def _check_sources(where: str, meta: dict) -> None:
    for key in LIST_KEYS:
        value = meta.get(key, [])
        # A bare string would be iterated character by character by the Kaggle CLI.
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(where, f'"{key}" must be a list of strings, e.g. ["owner/slug"]')
    for source in meta.get("dataset_sources", []):
        parts = source.split("/")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise _fail(
                where, f"dataset_sources entry {source!r} must look like 'owner/dataset-slug'"
            )
    for source in meta.get("kernel_sources", []):
        _check_kernel_string(where, "kernel_sources", source)
    for source in meta.get("model_sources", []):
        parts = source.split("/")
        if len(parts) != 5 or not all(parts) or not parts[4].isdigit():
            raise _fail(
                where,
                f"model_sources entry {source!r} must look like "
                "'owner/model/framework/instance/VERSION' with an integer version",
            )


def validate_metadata(meta: dict, kernel_dir: Path, *, origin: str | None = None) -> None:
    """Raise UserError (one line) for anything `kaggle kernels push` would reject or misread.

    `origin` names the file to fix (e.g. kernel-metadata/crn.json) in the message.
    """
    where = str(Path(kernel_dir) / "kernel-metadata.json")
    if origin:
        where += f" (from {origin})"
    unknown = sorted(set(meta) - KNOWN_KEYS)
    if unknown:
        raise _fail(
            where, f"unknown key {unknown[0]!r} (Kaggle ignores it silently); remove or fix it"
        )

    title = meta.get("title")
    if not isinstance(title, str) or len(title) < 5:
        raise _fail(where, f"title {title!r} must be a string of at least 5 characters")

    code_file = meta.get("code_file")
    if not isinstance(code_file, str) or not code_file:
        raise _fail(where, '"code_file" must name the notebook file, e.g. "crn.ipynb"')
    if not (Path(kernel_dir) / code_file).is_file():
        raise _fail(
            where, f"code_file {code_file!r} is not in {kernel_dir}; build the notebook first"
        )

    kernel_id = meta.get("id")
    if not kernel_id and not meta.get("id_no"):
        raise _fail(where, '"id" ("owner/slug") must be set')
    if kernel_id:
        if not isinstance(kernel_id, str) or kernel_id.count("/") != 1:
            raise _fail(where, f"id {kernel_id!r} must be 'owner/slug' (no version)")
        _check_kernel_string(where, "id", kernel_id)
        slug = kernel_id.split("/")[1]
        # The CLI only warns here, and Kaggle then files the notebook under the title's slug.
        if slugify(title) != slug.lower():
            raise _fail(
                where,
                f"title {title!r} gives the slug {slugify(title)!r}, not {slug!r}; "
                "make the title and the slug agree",
            )

    if meta.get("language") not in LANGUAGES:
        raise _fail(where, f"language {meta.get('language')!r} must be one of {list(LANGUAGES)}")
    if meta.get("kernel_type") not in KERNEL_TYPES:
        raise _fail(
            where, f"kernel_type {meta.get('kernel_type')!r} must be one of {list(KERNEL_TYPES)}"
        )
    if meta["kernel_type"] == "notebook":
        try:
            json.loads((Path(kernel_dir) / code_file).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _fail(
                where, f"code_file {code_file!r} is not notebook JSON; rebuild it"
            ) from None

    for key in BOOLEAN_KEYS:
        value = meta.get(key, False)
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            raise _fail(where, f"{key} must be true or false, not {value!r}")
    if _as_bool(meta.get("enable_gpu")) and _as_bool(meta.get("enable_tpu")):
        raise _fail(where, "enable_gpu and enable_tpu are both true; choose one")

    _check_sources(where, meta)

    pinning = meta.get("docker_image_pinning_type")
    if pinning is not None and pinning not in PINNING_TYPES:
        raise _fail(
            where, f"docker_image_pinning_type {pinning!r} must be one of {list(PINNING_TYPES)}"
        )
    shape = meta.get("machine_shape")
    if shape in RETIRED_MACHINE_SHAPES:
        raise _fail(
            where,
            f"machine_shape {shape!r} is retired on Kaggle (sessions would run on the default "
            f"instead); use {RETIRED_MACHINE_SHAPES[shape]!r}",
        )
    if shape is not None and shape not in MACHINE_SHAPES:
        raise _fail(where, f"machine_shape {shape!r} must be one of {list(MACHINE_SHAPES)}")


def _as_bool(value: object) -> bool:
    return value is True or str(value).lower() == "true"


def require_username(meta: dict) -> None:
    """Refuse to push metadata built without a real Kaggle user name."""
    owner = str(meta.get("id", "")).split("/")[0]
    if owner == PLACEHOLDER_USERNAME:
        raise UserError(
            "no Kaggle user name: set KAGGLE_USERNAME, pass --username, or put kaggle.json "
            "in ~/.kaggle, then rebuild"
        )


def write_metadata(meta: dict, kernel_dir: Path) -> Path:
    """Write kernel-metadata.json (sorted keys, so rebuilding changes nothing)."""
    path = Path(kernel_dir) / "kernel-metadata.json"
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
