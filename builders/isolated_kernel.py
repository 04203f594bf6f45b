"""Start an IPython kernel that cannot import this repository's `common` package.

The smoke run must prove a built notebook is self-contained, but `pip install -e .` makes
`common` importable from anywhere through an editable-install finder. This launcher removes that
finder and any repository folder from `sys.path`, then starts the ordinary ipykernel. It is run
as a script (never imported), with the kernel's arguments: `python isolated_kernel.py -f FILE`.
"""

from __future__ import annotations

import os
import sys


def _provides_common(entry: str, repo: str) -> bool:
    # The virtualenv usually lives inside the repository, so only folders that hold the
    # package itself (the repository root, a copy of it) are dropped, not site-packages.
    folder = os.path.realpath(entry or os.getcwd())
    return folder == repo or os.path.isfile(os.path.join(folder, "common", "__init__.py"))


def isolate(repo: str) -> None:
    """Drop the editable-install finders and the folders providing `common` from the import system."""
    repo = os.path.realpath(repo)
    sys.meta_path[:] = [
        f for f in sys.meta_path if not str(getattr(f, "__module__", "")).startswith("__editable__")
    ]
    sys.path[:] = [p for p in sys.path[1:] if p and not _provides_common(p, repo)]
    sys.path_importer_cache.clear()
    for name in [m for m in sys.modules if m == "common" or m.startswith("common.")]:
        del sys.modules[name]


if __name__ == "__main__":
    # sys.path[0] is this script's folder (builders/), dropped by isolate().
    isolate(os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0]))))
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
