"""The package's layers import downward only (DESIGN.md, "Layers and layout").

Every module under ``asyncsession/`` is parsed with ``ast``, never imported, and
each import it makes (at module level, inside functions or under
``TYPE_CHECKING`` alike, relative imports resolved) is checked against three
rules:

1. Layer order: ``exc`` < ``sql`` < ``engine`` < ``orm`` < ``sync``, ``ext``. A
   module may import its own layer and any lower one; ``sync`` and ``ext`` share
   a rank but may not import each other. Only ``asyncsession/__init__.py``, the
   public facade, sits above them all, so no layer imports it.
2. Only ``asyncsession/engine/drivers/`` imports ``asyncpg`` or ``aiosqlite``.
3. Nothing imports ``sqlalchemy``: it is a test-only oracle.

A module that belongs to no layer is itself reported, so a new top-level module
gets a place in ``LAYERS`` on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "asyncsession"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# module prefix -> (layer name, rank). Equal rank, different layer: no imports.
LAYERS = {
    f"{PACKAGE}.exc": ("exc", 0),
    f"{PACKAGE}.sql": ("sql", 1),
    f"{PACKAGE}.engine": ("engine", 2),
    f"{PACKAGE}.orm": ("orm", 3),
    f"{PACKAGE}.sync": ("sync", 4),
    f"{PACKAGE}.ext": ("ext", 4),
    PACKAGE: ("the public facade asyncsession/__init__.py", 5),
}
DRIVERS = f"{PACKAGE}.engine.drivers"
DRIVER_LIBRARIES = {"asyncpg", "aiosqlite"}
FORBIDDEN_LIBRARIES = {"sqlalchemy"}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> tuple[str, int] | None:
    for prefix, layer in LAYERS.items():
        if prefix != PACKAGE and _within(module, prefix):
            return layer
    return LAYERS[PACKAGE] if module == PACKAGE else None


def imported_modules(module: str, is_package: bool, source: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line, absolute module name)`` for every import in ``source``."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package_parts[: len(package_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base == PACKAGE:
                # `from asyncsession import orm` names a layer; any other name
                # comes from the facade itself.
                for alias in node.names:
                    submodule = f"{PACKAGE}.{alias.name}"
                    yield node.lineno, submodule if layer_of(submodule) else PACKAGE
            else:
                yield node.lineno, base
        elif isinstance(node, ast.Call) and (name := _dynamic_import(node)):
            yield node.lineno, name


def _dynamic_import(call: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = call.func
    func_name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if func_name not in {"import_module", "__import__"} or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def violations(module: str, is_package: bool, source: str) -> list[str]:
    """Every rule ``source`` (the text of ``module``) breaks, one message each."""
    own_layer = layer_of(module)
    if own_layer is None:
        return [f"{module} belongs to no layer; give it one in LAYERS in {Path(__file__).name}"]
    found = []
    for line, target in imported_modules(module, is_package, source):
        where = f"{module} line {line} imports {target}"
        root = target.partition(".")[0]
        if root in FORBIDDEN_LIBRARIES:
            found.append(f"{where}: {root} is a test-only oracle, never used by the package")
        elif root in DRIVER_LIBRARIES and not _within(module, DRIVERS):
            found.append(f"{where}: only {DRIVERS} may import {root}")
        elif root == PACKAGE:
            target_layer = layer_of(target)
            if target_layer is None:
                found.append(f"{where}: which belongs to no layer")
            elif target_layer != own_layer and target_layer[1] >= own_layer[1]:
                found.append(
                    f"{where}: layer {own_layer[0]} may not import layer {target_layer[0]}"
                )
    return found


def package_modules() -> Iterator[tuple[str, bool, Path]]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        yield ".".join(parts[:-1] if is_package else parts), is_package, path


def test_package_imports_respect_layers() -> None:
    found = [
        message
        for module, is_package, path in package_modules()
        for message in violations(module, is_package, path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_walk_sees_the_package() -> None:
    modules = {module for module, _, _ in package_modules()}
    assert {PACKAGE, f"{PACKAGE}.exc", f"{PACKAGE}.sql", DRIVERS} <= modules


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("asyncsession.sql.compiler", False, "from asyncsession.orm import session"),
        ("asyncsession.sql.compiler", False, "import asyncsession.engine.base"),
        ("asyncsession.sql.compiler", False, "from ..engine import base"),
        ("asyncsession.sql", True, "from ..orm import session"),
        ("asyncsession.engine.base", False, "from asyncsession import select"),
        ("asyncsession.engine.base", False, "from asyncsession import orm"),
        ("asyncsession.exc", False, "from asyncsession.sql import elements"),
        ("asyncsession.sync.session", False, "from asyncsession.ext import hybrid"),
        ("asyncsession.ext.hybrid", False, "from ..sync import session"),
        ("asyncsession.engine.base", False, "import asyncpg"),
        ("asyncsession.orm.session", False, "from aiosqlite import Connection"),
        ("asyncsession.sql.types", False, "import importlib\nimportlib.import_module('asyncpg')"),
        ("asyncsession.engine.drivers.pg", False, "import sqlalchemy.orm"),
        (
            "asyncsession.sql.compiler",
            False,
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from asyncsession.engine import AsyncEngine",
        ),
        ("asyncsession.compat", False, ""),
    ],
)
def test_checker_catches(module: str, is_package: bool, source: str) -> None:
    assert len(violations(module, is_package, source)) == 1


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("asyncsession", True, "from asyncsession.orm import AsyncSession\nfrom . import exc"),
        ("asyncsession.sql.compiler", False, "from asyncsession.exc import CompileError"),
        ("asyncsession.sql.compiler", False, "from asyncsession import exc"),
        ("asyncsession.sql.compiler", False, "from . import elements\nfrom .dialects import pg"),
        ("asyncsession.sql.dialects.pg", False, "from ..compiler import Compiled"),
        ("asyncsession.engine.base", False, "from ..sql import compiler\nfrom .. import exc"),
        ("asyncsession.engine.drivers.pg", False, "import asyncpg\nfrom ..base import Pool"),
        ("asyncsession.engine.drivers", True, "from . import pg\nimport aiosqlite"),
        ("asyncsession.orm.session", False, "from asyncsession.engine import AsyncEngine"),
        ("asyncsession.sync.session", False, "from ..orm import session\nimport anyio"),
        ("asyncsession.ext.hybrid", False, "from asyncsession.sql import elements"),
    ],
)
def test_checker_allows(module: str, is_package: bool, source: str) -> None:
    assert violations(module, is_package, source) == []
