"""Find the `common` modules a notebook needs and pack them into the notebook.

A built notebook carries the modules it imports (transitively, with their parent packages) as one
compressed blob; its library cell writes them as files into a fresh folder on `sys.path`, so the
notebook's own `from common.X import a` lines run unchanged, like in the repository. Imports are
read with `ast`, never with regexes, so strings and comments cannot fool it.
"""

from __future__ import annotations

import ast
import base64
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from IPython.core.inputtransformer2 import TransformerManager

from common.errors import UserError

LIBRARY_PACKAGE = "common"
# Command-line code is never shipped: it parses arguments and imports every command group.
NOT_SHIPPED = ("common.commands", "common.cli", "common.__main__")


@dataclass(frozen=True)
class CommonImport:
    """One `from common.X import ...` statement found in a module or a notebook cell."""

    module: str
    names: tuple[str, ...]  # the imported names (not their aliases)
    lineno: int
    top_level: bool  # False inside a function or an `if`: needed, but not at import time


@dataclass(frozen=True)
class ModuleSource:
    """A `common` module as it will be written next to the notebook."""

    name: str
    path: Path  # relative to the repository root
    text: str
    imports: tuple[CommonImport, ...]
    exports: frozenset[str]  # every global it has, imported names included


def is_command_code(module: str) -> bool:
    """True for `common.cli`, `common.commands...` and `common.__main__`."""
    return any(module == x or module.startswith(x + ".") for x in NOT_SHIPPED)


def _where(filename: str, node: ast.AST) -> str:
    return f"{filename}:{getattr(node, 'lineno', 0)}"


def python_source(source: str) -> str:
    """IPython cell text as plain Python (`!pip ...` and `%time` become calls, line by line)."""
    if source.lstrip().startswith("%%"):
        return ""  # a cell magic: its body is not Python
    return TransformerManager().transform_cell(source)


def parse_python(source: str, filename: str) -> ast.Module:
    """`ast.parse` with a one-line error naming the file and line."""
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise UserError(
            f"{filename}:{exc.lineno}: syntax error ({exc.msg}); fix the source"
        ) from None


def find_common_imports(tree: ast.Module, filename: str) -> list[CommonImport]:
    """Every `from common.X import ...`, refusing the forms whose module the builder cannot see."""
    found: list[CommonImport] = []
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == LIBRARY_PACKAGE:
                    raise UserError(
                        f"{_where(filename, node)}: write `from {alias.name} import NAME` instead "
                        f"of `import {alias.name}`, so the builder sees which module is needed"
                    )
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                raise UserError(
                    f"{_where(filename, node)}: relative import `from {'.' * node.level}{module} "
                    f"import ...`; write `from common.MODULE import NAME`"
                )
            if module.split(".")[0] != LIBRARY_PACKAGE:
                continue
            if module == LIBRARY_PACKAGE:
                names = ", ".join(a.name for a in node.names)
                raise UserError(
                    f"{_where(filename, node)}: `from common import {names}`; write "
                    f"`from common.{node.names[0].name} import NAME`"
                )
            if any(a.name == "*" for a in node.names):
                raise UserError(
                    f"{_where(filename, node)}: `from {module} import *`; import the names you use"
                )
            if is_command_code(module):
                raise UserError(
                    f"{_where(filename, node)}: {module} is command-line code and never goes "
                    "into a notebook; import from the library module it calls instead"
                )
            found.append(
                CommonImport(
                    module=module,
                    names=tuple(a.name for a in node.names),
                    lineno=node.lineno,
                    top_level=id(node) in top,
                )
            )
        elif isinstance(node, ast.Call):
            _refuse_import_by_name(node, filename)
    return sorted(found, key=lambda imp: imp.lineno)


def _refuse_import_by_name(node: ast.Call, filename: str) -> None:
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    arg = node.args[0] if node.args else None
    if (
        called in ("import_module", "__import__")
        and isinstance(arg, ast.Constant | ast.JoinedStr)
        and ast.unparse(arg).strip("'\"f").startswith(LIBRARY_PACKAGE)
    ):
        raise UserError(
            f"{_where(filename, node)}: imports a common module by name at run time, which the "
            "builder cannot see; import it with `from common.X import NAME`"
        )


def bound_names(node: ast.AST) -> list[str]:
    """Names a statement binds in the namespace it runs in (not inside functions or classes)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    names: list[str] = []
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign) and (
        not isinstance(node, ast.AnnAssign) or node.value is not None
    ):
        targets = [node.target]
    elif isinstance(node, ast.For | ast.AsyncFor):
        targets = [node.target]
    elif isinstance(node, ast.With | ast.AsyncWith):
        targets = [item.optional_vars for item in node.items if item.optional_vars]
    for target in targets:
        names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    names += [n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr)]
    if isinstance(node, ast.If | ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
        for child in node.body + getattr(node, "orelse", []):
            names += bound_names(child)
    if isinstance(node, ast.Try):
        for child in node.body + node.orelse + node.finalbody:
            names += bound_names(child)
        for handler in node.handlers:
            for child in handler.body:
                names += bound_names(child)
    return names


def top_level_names(tree: ast.Module) -> set[str]:
    """Every global a module (or a notebook cell) binds."""
    return {name for node in tree.body for name in bound_names(node)}


def module_file(module: str, repo: Path) -> Path:
    """`common.models.crn` -> common/models/crn.py (or the package's __init__.py)."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (repo / candidate).is_file():
            return candidate
    raise UserError(f"module {module} not found: no {Path(*parts)}.py in {repo}; check the import")


def _module_exists(module: str, repo: Path) -> bool:
    try:
        module_file(module, repo)
    except UserError:
        return False
    return True


def parse_module(module: str, repo: Path) -> ModuleSource:
    """Read one `common` module and the `common` imports it makes."""
    path = module_file(module, repo)
    filename = path.as_posix()
    text = (repo / path).read_text(encoding="utf-8")
    tree = parse_python(text, filename)
    return ModuleSource(
        name=module,
        path=path,
        text=text,
        imports=tuple(find_common_imports(tree, filename)),
        exports=frozenset(top_level_names(tree)),
    )


def check_names_exist(
    imports: Iterable[CommonImport], modules: dict[str, ModuleSource], filename: str
) -> None:
    """Each imported name must be a global of its module (a typo fails the build, not Kaggle)."""
    for imp in imports:
        module = modules[imp.module]
        for name in imp.names:
            if name not in module.exports:
                raise UserError(
                    f"{filename}:{imp.lineno}: {module.path.as_posix()} defines no top-level "
                    f"`{name}`; import a name that module defines"
                )


def _packages(module: str) -> list[str]:
    """The packages Python imports before `module`: common, common.models, ..."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def resolve_modules(
    roots: Iterable[str], repo: Path, importers: dict[str, str] | None = None
) -> list[ModuleSource]:
    """The modules `roots` need (transitively, packages included), sorted by path.

    `importers` maps a root to where it is imported ("file:line"), for error messages.
    """
    modules: dict[str, ModuleSource] = {}
    pending = [(root, (importers or {}).get(root)) for root in roots]
    while pending:
        name, via = pending.pop()
        if name in modules:
            continue
        if via and not _module_exists(name, repo):
            raise UserError(
                f"{via}: no module {name} (no {Path(*name.split('.'))}.py); fix the import"
            )
        mod = modules[name] = parse_module(name, repo)
        pending += [(p, None) for p in _packages(name)]
        pending += [(i.module, f"{mod.path.as_posix()}:{i.lineno}") for i in mod.imports]
    for mod in modules.values():
        check_names_exist(mod.imports, modules, mod.path.as_posix())
    return sorted(modules.values(), key=lambda m: m.path.as_posix())


def library_modules(repo: Path) -> list[str]:
    """Every module under common/ a notebook may use (command-line code excluded)."""
    names = []
    for path in sorted((repo / LIBRARY_PACKAGE).rglob("*.py")):
        parts = path.relative_to(repo).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not is_command_code(name):
            names.append(name)
    return names


def pack(modules: Iterable[ModuleSource]) -> str:
    """The modules' texts as one line of base64 (zlib-compressed JSON {path: text}).

    Sorted keys and a fixed compression level: the same sources always give the same bytes.
    """
    files = {m.path.as_posix(): m.text for m in modules}
    raw = json.dumps(files, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def unpack(blob: str) -> dict[str, str]:
    """{path: text} from `pack`'s output (what the library cell does at run time)."""
    return json.loads(zlib.decompress(base64.b64decode(blob)))
