"""Find the `common` modules a notebook needs and rewrite their imports for one shared namespace.

A built notebook holds every needed module as a cell, so `from common.X import a` lines are
removed (`a` is already a global by then) and `from common.X import a as b` becomes `b = a`.
Everything is read with `ast`, never with regexes, so strings and comments cannot fool it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from IPython.core.inputtransformer2 import TransformerManager

from common.errors import UserError

LIBRARY_PACKAGE = "common"
# Command-line code is never inlined: it parses arguments and imports every command group.
NOT_INLINABLE = ("common.commands", "common.cli", "common.__main__")


@dataclass(frozen=True)
class CommonImport:
    """One `from common.X import ...` statement found in a module or a notebook cell."""

    module: str
    names: tuple[tuple[str, str], ...]  # (imported name, bound name)
    lineno: int
    end_lineno: int
    col_offset: int
    top_level: bool  # False inside a function or an `if`: it orders nothing at import time


@dataclass(frozen=True)
class ModuleSource:
    """A `common` module ready to be pasted into a notebook cell."""

    name: str
    path: Path  # relative to the repository root
    docstring: str
    code: str  # the module's text with its `common` imports rewritten
    deps: tuple[str, ...]  # modules imported at top level: they must come first
    lazy_deps: tuple[str, ...]  # imported inside functions: needed, in any order
    imports: tuple[CommonImport, ...]
    # What the module itself defines (name -> what it is bound to); checked for clashes.
    bindings: dict[str, frozenset[str]] = field(hash=False, compare=False)
    # Every global it has, including names it imports from other common modules.
    exports: frozenset[str] = frozenset()

    @property
    def summary(self) -> str:
        """First line of the module docstring (the cell heading shows it)."""
        return self.docstring.strip().splitlines()[0] if self.docstring.strip() else ""


def is_command_code(module: str) -> bool:
    """True for `common.cli`, `common.commands...` and `common.__main__`."""
    return any(module == x or module.startswith(x + ".") for x in NOT_INLINABLE)


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
    """Every `from common.X import ...`, refusing the forms that cannot be inlined."""
    found: list[CommonImport] = []
    nodes: set[int] = set()
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == LIBRARY_PACKAGE:
                    raise UserError(
                        f"{_where(filename, node)}: `import {alias.name}` cannot be inlined; "
                        f"write `from {alias.name} import NAME`"
                    )
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                raise UserError(
                    f"{_where(filename, node)}: relative import `from {'.' * node.level}{module} "
                    f"import ...` cannot be inlined; write `from common.MODULE import NAME`"
                )
            if module.split(".")[0] != LIBRARY_PACKAGE:
                continue
            if module == LIBRARY_PACKAGE:
                names = ", ".join(a.name for a in node.names)
                raise UserError(
                    f"{_where(filename, node)}: `from common import {names}` cannot be inlined; "
                    f"write `from common.{node.names[0].name} import NAME`"
                )
            if any(a.name == "*" for a in node.names):
                raise UserError(
                    f"{_where(filename, node)}: `from {module} import *` cannot be inlined; "
                    "import the names you use"
                )
            if is_command_code(module):
                raise UserError(
                    f"{_where(filename, node)}: {module} is command-line code and is never "
                    "inlined; import from the library module it calls instead"
                )
            nodes.add(id(node))
            found.append(
                CommonImport(
                    module=module,
                    names=tuple((a.name, a.asname or a.name) for a in node.names),
                    lineno=node.lineno,
                    end_lineno=node.end_lineno or node.lineno,
                    col_offset=node.col_offset,
                    top_level=id(node) in top,
                )
            )
    _refuse_shared_lines(tree, found, nodes, filename)
    return sorted(found, key=lambda imp: imp.lineno)


def _refuse_shared_lines(
    tree: ast.Module, imports: list[CommonImport], import_nodes: set[int], filename: str
) -> None:
    # Imports are rewritten line by line, so another statement on the same line would be lost.
    spans = [(imp.lineno, imp.end_lineno) for imp in imports]
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or id(node) in import_nodes:
            continue
        compound = hasattr(node, "body")
        for start, end in spans:
            if start <= node.lineno <= end or (
                not compound and start <= (node.end_lineno or node.lineno) <= end
            ):
                raise UserError(
                    f"{filename}:{start}: put the `from common...` import on its own line "
                    "(no `;`, not after `if ...:`), so the builder can rewrite it"
                )


def rewrite_imports(source: str, imports: list[CommonImport]) -> str:
    """Replace each common import by a comment, `pass` (inside a block) or alias assignments."""
    lines = source.splitlines()
    for imp in sorted(imports, key=lambda i: i.lineno, reverse=True):
        indent = " " * imp.col_offset
        listed = ", ".join(n if n == b else f"{n} as {b}" for n, b in imp.names)
        new = [f"{indent}# inlined above: from {imp.module} import {listed}"]
        new += [f"{indent}{bound} = {name}" for name, bound in imp.names if bound != name]
        if not imp.top_level and len(new) == 1:
            new.append(f"{indent}pass")  # the import may have been the block's only statement
        lines[imp.lineno - 1 : imp.end_lineno] = new
    return "\n".join(lines) + ("\n" if source.endswith("\n") else "")


def _binding_key(node: ast.stmt, name: str) -> str:
    """What a top-level name is bound to, so that identical bindings in two modules agree."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname == name:
                return f"object {alias.name}"
            if alias.asname is None and alias.name.split(".")[0] == name:
                return f"object {name}"
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        for alias in node.names:
            if (alias.asname or alias.name) == name:
                return f"object {node.module}.{alias.name}"
    return ast.dump(node)


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


def top_level_bindings(
    tree: ast.Module, skip: Iterable[CommonImport] = ()
) -> dict[str, frozenset[str]]:
    """name -> what it is bound to, for every global a module or notebook defines.

    Names imported from `common` are the library's own objects, not new definitions; dunder
    names (`__all__`) are per-module bookkeeping that a notebook does not rely on.
    """
    skipped = {imp.lineno for imp in skip}
    bindings: dict[str, set[str]] = {}
    for node in tree.body:
        if getattr(node, "lineno", None) in skipped:
            continue
        for name in bound_names(node):
            if name.startswith("__") and name.endswith("__"):
                continue
            bindings.setdefault(name, set()).add(_binding_key(node, name))
    for imp in skip:
        for name, bound in imp.names:
            if bound != name:
                bindings.setdefault(bound, set()).add(f"object {imp.module}.{name}")
    return {name: frozenset(keys) for name, keys in bindings.items()}


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


def _refuse_notebook_hazards(tree: ast.Module, filename: str) -> None:
    """Module code that works as a file but breaks (or runs) when pasted into a notebook."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "__file__":
            raise UserError(
                f"{_where(filename, node)}: uses __file__, which a notebook does not have; "
                "pass the path in as an argument"
            )
        if isinstance(node, ast.Compare) and any(
            isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node)
        ):
            raise UserError(
                f"{_where(filename, node)}: an `if __name__ == ...` block would run inside the "
                "notebook; move command-line code to common/commands/"
            )
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0] if node.args else None
            if (
                called in ("import_module", "__import__")
                and isinstance(arg, ast.Constant | ast.JoinedStr)
                and ast.unparse(arg).strip("'\"f").startswith(LIBRARY_PACKAGE)
            ):
                raise UserError(
                    f"{_where(filename, node)}: imports a common module by name at run time, "
                    "which the notebook cannot do; import it with `from common.X import NAME`"
                )


def parse_module(module: str, repo: Path) -> ModuleSource:
    """Read one `common` module and rewrite its `common` imports."""
    path = module_file(module, repo)
    filename = path.as_posix()
    text = (repo / path).read_text(encoding="utf-8")
    tree = parse_python(text, filename)
    _refuse_notebook_hazards(tree, filename)
    imports = find_common_imports(tree, filename)
    bindings = top_level_bindings(tree, skip=imports)
    deps = tuple(dict.fromkeys(i.module for i in imports if i.top_level))
    lazy = tuple(
        dict.fromkeys(i.module for i in imports if not i.top_level and i.module not in deps)
    )
    return ModuleSource(
        name=module,
        path=path,
        docstring=ast.get_docstring(tree) or "",
        code=rewrite_imports(text, imports),
        deps=deps,
        lazy_deps=lazy,
        imports=tuple(imports),
        bindings=bindings,
        exports=frozenset(bindings) | {b for i in imports if i.top_level for _, b in i.names},
    )


def check_names_exist(
    imports: Iterable[CommonImport], modules: dict[str, ModuleSource], filename: str
) -> None:
    """Each imported name must be a global of its module (a typo fails the build, not Kaggle)."""
    for imp in imports:
        module = modules[imp.module]
        for name, _ in imp.names:
            if name not in module.exports:
                raise UserError(
                    f"{filename}:{imp.lineno}: {module.path.as_posix()} defines no top-level "
                    f"`{name}`; import a name that module defines"
                )


def resolve_modules(
    roots: Iterable[str], repo: Path, importers: dict[str, str] | None = None
) -> list[ModuleSource]:
    """The modules `roots` need (transitively), dependencies first, checked for name clashes.

    `importers` maps a root to where it is imported ("file:line"), for error messages.
    """
    modules: dict[str, ModuleSource] = {}
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str, via: str | None) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name) :] + [name])
            raise UserError(
                f"import cycle between common modules ({cycle}); move one import inside the "
                "function that needs it"
            )
        visiting.append(name)
        if name not in modules:
            if via and not _module_exists(name, repo):
                raise UserError(
                    f"{via}: no module {name} (no {Path(*name.split('.'))}.py); fix the import"
                )
            modules[name] = parse_module(name, repo)
        mod = modules[name]
        lines = {imp.module: f"{mod.path.as_posix()}:{imp.lineno}" for imp in reversed(mod.imports)}
        for dep in mod.deps:
            visit(dep, lines[dep])
        visiting.pop()
        order.append(name)
        for dep in mod.lazy_deps:
            visit(dep, lines[dep])

    for root in roots:
        visit(root, (importers or {}).get(root))
    ordered = [modules[name] for name in order]
    check_collisions(ordered)
    for mod in ordered:
        check_names_exist(mod.imports, modules, mod.path.as_posix())
    return ordered


def check_collisions(modules: Iterable[ModuleSource]) -> None:
    """Fail when two modules bind the same global to different things (one would overwrite the other)."""
    owner: dict[str, ModuleSource] = {}
    for mod in modules:
        for name, keys in mod.bindings.items():
            first = owner.setdefault(name, mod)
            if first is not mod and first.bindings[name] != keys:
                raise UserError(
                    f"{first.path.as_posix()} and {mod.path.as_posix()} both define top-level "
                    f"`{name}` differently; rename one (names must be unique across common/)"
                )


def library_modules(repo: Path) -> list[str]:
    """Every inlinable module under common/ (command-line code and the bare package excluded)."""
    names = []
    for path in sorted((repo / LIBRARY_PACKAGE).rglob("*.py")):
        parts = path.relative_to(repo).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name != LIBRARY_PACKAGE and not is_command_code(name):
            names.append(name)
    return names
