"""What made a result: the code version and the config, recorded in every output."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from sacnn import __version__


def code_version() -> str:
    """Package version plus the git commit (with ``-dirty`` when the tree has local edits).

    Falls back to the package version alone outside a git checkout (an installed wheel).
    """
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'-dirty' if dirty else ''}"


def config_json(config: Any) -> str:
    """Canonical JSON of a config (sorted keys), suitable for a NetCDF/checkpoint attribute."""
    return json.dumps(config, sort_keys=True, default=str)


# ------------------------------------------------------------------- code digests
#
# The workflow passes each rule a digest of the code that computes its outputs as a param
# (Snakemake reruns a job whose params changed). A digest rather than the files as inputs:
# it does not change when the checkout moves or when the workflow is used as a module from
# elsewhere, and it ignores comments, formatting and docstrings, so editing them does not
# retrain anything, while any change to what the code does reruns what it computed.

PACKAGE_ROOT = Path(__file__).resolve().parent


def _module_path(name: str) -> Path | None:
    """The source file of ``sacnn[.x.y]``, or None when there is no such module."""
    parts = name.split(".")[1:]
    base = PACKAGE_ROOT.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and path.is_file() or not parts and path.name == "__init__.py":
            return path
    return None


def _exports(tree: ast.Module) -> dict[str, str]:
    """A package's lazy ``_EXPORTS`` map (name -> module), as written in its ``__init__``
    (``sacnn._lazy``)."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "_EXPORTS"):
            return ast.literal_eval(node.value)
    return {}


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                       | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def _parsed(name: str) -> tuple[ast.Module, bool]:
    path = _module_path(name)
    if path is None:
        raise ValueError(f"code_digest: no module {name!r} under {PACKAGE_ROOT}")
    return ast.parse(path.read_text(encoding="utf-8"), str(path)), path.name == "__init__.py"


@functools.cache
def _imports(name: str) -> frozenset[str]:
    """The sacnn modules that module ``name`` imports (at top level or inside functions)."""
    tree, is_package = _parsed(name)
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    # imports under `if TYPE_CHECKING:` are for annotations only: they never run
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and (getattr(node.test, "id", None) == "TYPE_CHECKING"
                        or getattr(node.test, "attr", None) == "TYPE_CHECKING")
                   for stmt in node.body for n in ast.walk(stmt)}

    def add(module: str, *, whole: bool) -> None:
        if not module.startswith("sacnn") or _module_path(module) is None:
            return
        found.add(module)
        parts = module.split(".")  # importing a.b.c runs the __init__ of a and a.b
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
        tree_, is_pkg = _parsed(module)
        if whole and is_pkg:  # its lazy members may all be used
            found.update(_exports(tree_).values())

    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, whole=True)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            add(base, whole=False)
            exports = _exports(_parsed(base)[0]) if _module_path(base) else {}
            for alias in node.names:
                if _module_path(f"{base}.{alias.name}"):
                    add(f"{base}.{alias.name}", whole=True)
                elif alias.name in exports:
                    add(exports[alias.name], whole=False)
    found.discard(name)
    return frozenset(found)


@functools.cache
def module_closure(entry: str) -> tuple[str, ...]:
    """``entry`` and every sacnn module it imports, directly or not, sorted."""
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(name) - seen)
    return tuple(sorted(seen))


def source_digest(source: str) -> str:
    """SHA-256 of what Python source does: comments, layout and docstrings left out.

    The code as ``ast.unparse`` writes it back, not ``ast.dump`` (whose node fields change
    with every Python version and would rerun everything after an upgrade)."""
    tree = _strip_docstrings(ast.parse(source))
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()


@functools.cache
def _module_digest(name: str) -> str:
    """:func:`source_digest` of module ``name``'s file."""
    path = _module_path(name)
    if path is None:
        raise ValueError(f"code_digest: no module {name!r} under {PACKAGE_ROOT}")
    return source_digest(path.read_text(encoding="utf-8"))


def code_digest(*entries: str, files: tuple[str | Path, ...] = ()) -> str:
    """A short digest of what the modules ``entries`` (and everything they import from
    sacnn) do, plus the bytes of ``files`` (e.g. a notebook): the code a rule runs."""
    h = hashlib.sha256()
    for name in sorted({m for e in entries for m in module_closure(e)}):
        h.update(f"{name}:{_module_digest(name)}\n".encode())
    for path in files:
        h.update(hashlib.sha256(Path(path).read_bytes()).hexdigest().encode())
    return h.hexdigest()[:16]
