"""What compiling a program may touch besides its own text: which Python modules `python("mod:fn")` and
`json(model="mod:Class")` may name, whether they may be imported now, and which files `file=` may read.

Checking an untrusted program must run none of its code and read none of the user's other files, so
references are resolved statically (the module's file beside the program, the name in its source, found
with `ast`) and imported only when the program is loaded to run, or when the user allows it.
"""

from __future__ import annotations

import ast as pyast
import importlib
import importlib.machinery
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decc.compiler.options import folder_of
from decc.dsl import ast
from decc.errors import DeccError

__all__ = ["Trust", "ModuleRef", "check_file_allowed", "import_object", "resolve_module"]

PYTHON_PATH_HINT = "--python-path DIR (python_path=[...]) adds a folder to look for modules in"
INSTALLED_HINT = "--allow-installed (allow_installed=True) allows the standard library and installed packages"
OUTSIDE_HINT = "--allow-files-outside (allow_files_outside=True) reads files outside the program's folder"
IMPORTS_HINT = "--allow-imports (allow_imports=True) imports the program's modules when it compiles"


@dataclass(frozen=True)
class Trust:
    """The allowances of one compile. The default trusts nothing: no module is imported, only modules
    beside the program may be named, and only files in the program's folder (or below) are read."""

    python_path: tuple[Path, ...] = ()  # more folders to find modules in, after the program's own
    allow_installed: bool = False  # the standard library and installed packages
    allow_files_outside: bool = False  # schema, grammar and classifier paths outside the program's folder
    allow_imports: bool = False  # import the modules now (loading a program to run it)
    check_only: bool = False  # `decc check`: a pydantic model not imported is checked statically only


@dataclass(frozen=True)
class ModuleRef:
    """A `module:name` reference resolved without running anything: the module's file, or None for an
    installed module (allowed by `allow_installed`)."""

    module: str
    attr: str
    file: Path | None
    folder: Path | None


def resolve_module(lit: ast.StrLit, base_dir: Path, trust: Trust, what: str) -> ModuleRef:
    """Find `module:name` statically: the module's file in the program's folder or on `python_path`, and
    `name` defined at its top level; an installed module only with `allow_installed`."""
    module, sep, attr = lit.value.partition(":")
    if not sep or not module or not attr:
        raise DeccError(f"{what} must be written 'module:name', not {json.dumps(lit.value)}", lit.span)
    folders = [folder_of(lit, base_dir).resolve(), *(Path(p).resolve() for p in trust.python_path)]
    parts = module.split(".")
    for folder in folders:
        for candidate in (folder.joinpath(*parts).with_suffix(".py"), folder.joinpath(*parts, "__init__.py")):
            if all(p.isidentifier() for p in parts) and candidate.is_file():
                if _installed(parts[0], exclude=folder):
                    raise DeccError(
                        f"module '{parts[0]}' beside the program has the name of an installed module (or "
                        "one of the standard library): importing it would mix the two up",
                        lit.span,
                        notes=[f"found at {candidate}"],
                        hints=[f"rename {candidate.relative_to(folder).parts[0]}"],
                    )
                _check_defines(candidate, module, attr, lit)
                return ModuleRef(module, attr, candidate, folder)
    installed = _installed(parts[0]) if all(p.isidentifier() for p in parts) else False
    if installed and trust.allow_installed:
        return ModuleRef(module, attr, None, None)
    where = ", ".join(str(f) for f in folders)
    if installed:
        raise DeccError(
            f"cannot import module '{module}': it is not beside the program but installed (or in the "
            "standard library), and a program may use those only when you allow it",
            lit.span,
            hints=[INSTALLED_HINT],
        )
    raise DeccError(
        f"cannot import module '{module}': no {'/'.join(parts)}.py in {where}",
        lit.span,
        hints=[f"modules are found beside the program ({folders[0]})", PYTHON_PATH_HINT, INSTALLED_HINT],
    )


def _installed(top: str, exclude: Path | None = None) -> bool:
    """Whether a top-level module is importable from `sys.path` less the folder `exclude` (found, not
    imported: nothing runs)."""
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        return True
    path = [p for p in sys.path if exclude is None or Path(p or ".").resolve() != exclude]
    try:
        return importlib.machinery.PathFinder.find_spec(top, path) is not None
    except (ImportError, ValueError):
        return False


def _check_defines(path: Path, module: str, attr: str, lit: ast.StrLit) -> None:
    """`attr`'s first part is bound at the top level of the module's source (a `def`, `class`, assignment
    or import); a star import or a module `__getattr__` may bind anything, so those pass."""
    try:
        tree = pyast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise DeccError(f"cannot import module '{module}': {reason}", lit.span) from None
    names: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, (pyast.FunctionDef, pyast.AsyncFunctionDef, pyast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (pyast.Assign, pyast.AnnAssign, pyast.AugAssign)):
            targets = node.targets if isinstance(node, pyast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in pyast.walk(t) if isinstance(n, pyast.Name))
        elif isinstance(node, (pyast.Import, pyast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return
                names.add(alias.asname or alias.name.split(".")[0])
    if attr.split(".")[0] not in names and "__getattr__" not in names:
        raise DeccError(f"module '{module}' has no '{attr}'", lit.span, notes=[f"looked in {path}"])


def _top_level(body: list[pyast.stmt]) -> list[pyast.stmt]:
    """The statements that run at module level, those under `if`/`try`/`with` included."""
    out: list[pyast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, (pyast.If, pyast.Try, pyast.With)):
            for block in ("body", "orelse", "finalbody"):
                out.extend(_top_level(getattr(node, block, [])))
            for handler in getattr(node, "handlers", []):
                out.extend(_top_level(handler.body))
    return out


_LOADED: dict[str, Path] = {}  # modules decc imported from a program's folder, by name


def import_object(lit: ast.StrLit, base_dir: Path, trust: Trust, what: str) -> Any:
    """Import what `lit` names (after `resolve_module`): this runs the module's code, so callers do it only
    with `allow_imports`. A module of the same name imported from elsewhere is refused rather than mixed up
    (one decc imported for another program is imported afresh)."""
    ref = resolve_module(lit, base_dir, trust, what)
    loaded = sys.modules.get(ref.module)
    if ref.file is not None and loaded is not None and not _same(getattr(loaded, "__file__", None), ref.file):
        if ref.module not in _LOADED:
            raise DeccError(
                f"module '{ref.module}' beside the program has the name of a module already imported "
                f"from {getattr(loaded, '__file__', None) or 'Python itself'}",
                lit.span,
                hints=[f"rename {ref.file.name}"],
            )
        for name in [n for n in sys.modules if n == ref.module or n.startswith(ref.module + ".")]:
            del sys.modules[name]  # a module of the same name that decc imported for another program
    folder = str(ref.folder) if ref.folder is not None else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # type: ignore[arg-type]
    try:
        module = importlib.import_module(ref.module)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 - the user's module failing (or exiting) is a user error
        kind = f"{type(err).__name__} " if isinstance(err, SystemExit) else ""
        raise DeccError(f"cannot import module '{ref.module}': {kind}{err}", lit.span) from None
    finally:
        if added:
            sys.path.remove(folder)  # type: ignore[arg-type]
    if ref.file is not None:
        if not _same(getattr(module, "__file__", None), ref.file):
            raise DeccError(
                f"importing '{ref.module}' found {getattr(module, '__file__', None)}, not {ref.file}",
                lit.span,
                hints=[f"rename {ref.file.name}: another module of that name comes first"],
            )
        _LOADED[ref.module] = ref.file
    obj = module
    for part in ref.attr.split("."):
        if not hasattr(obj, part):
            raise DeccError(f"module '{ref.module}' has no '{ref.attr}'", lit.span)
        obj = getattr(obj, part)
    return obj


def _same(file: str | None, path: Path) -> bool:
    try:
        return file is not None and Path(file).resolve() == path.resolve()
    except OSError:
        return False


def check_file_allowed(path: Path, lit: ast.StrLit, base_dir: Path, trust: Trust, what: str) -> Path:
    """`path` (named by `lit`), if it lies in the folder of the file that names it (or below, symlinks
    followed) or `allow_files_outside`; otherwise a positioned error naming the allowance."""
    folder = folder_of(lit, base_dir).resolve()
    if trust.allow_files_outside or path.resolve().is_relative_to(folder):
        return path
    raise DeccError(
        f"{what} '{lit.value}' is outside the program's folder ({folder})",
        lit.span,
        hints=[f"{what}s are read from the program's folder and the folders below it", OUTSIDE_HINT],
    )
