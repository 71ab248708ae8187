"""The layers of ``monai_mine`` (docs/design.md section 1): the core imports neither the workflows nor the apps, the
workflows do not import the apps, and the apps may import anything. Every import of every module counts, a lazy one
inside a function and ``importlib.import_module("monai_mine...")`` included, so that no layer leans on one above it
at run time either. The deprecated aliases of the old paths are exempt: each imports only its new home's helper."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPOSITORY

PACKAGE = REPOSITORY / "monai_mine"

CORE = frozenset(
    {
        "__init__",  # the package itself: the version and the lazy attribute access to the core and workflows
        "_deprecated",
        "data",
        "flows",
        "inference",
        "io",
        "keys",
        "losses",
        "metrics",
        "networks",
        "optimization",
        "stages",
        "timing",
        "transforms",
        "visualize",
    }
)
"""Tensor code and its helpers: flows, networks, losses, metrics, transforms, data, instance optimisation."""

WORKFLOWS = frozenset({"bundle", "engines"})
"""MONAI bundles and Ignite engines, built on the core."""

APPS = frozenset({"apps", "__main__"})
"""The applications (``monai_mine.apps``) and ``python -m monai_mine``, which runs the command line."""

DEPRECATED_ALIASES = frozenset({"benchmark", "cli", "demo", "deploy", "label", "learn2reg", "registration"})
"""The old paths kept for one release (``monai_mine._deprecated``); nothing in the package may import them."""

LAYERS = {**dict.fromkeys(CORE, 0), **dict.fromkeys(WORKFLOWS, 1), **dict.fromkeys(APPS, 2)}
LAYER_NAMES = ("core", "workflows", "apps")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level(name: str) -> str:
    """``monai_mine.<top>``'s ``<top>``: a first-level module or package (``__init__`` for ``monai_mine`` itself)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_module(name: str) -> bool:
    """Whether ``monai_mine.<name>`` is a module or package (not an attribute such as ``__version__``)."""
    return (PACKAGE / name / "__init__.py").is_file() or (PACKAGE / f"{name}.py").is_file()


def imported_modules(source: str, name: str, package: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``monai_mine`` import in the ``source`` of the module ``name`` (``package``: an
    ``__init__.py``): at module level or in a function, absolute or relative, and ``importlib.import_module`` of a
    constant name."""
    parent = name if package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent.split(".")[: len(parent.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module
            found.append((node.lineno, module))
            if module == "monai_mine":  # ``from monai_mine import apps`` imports the subpackage it names
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if is_module(alias.name)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return [(line, module) for line, module in found if module == "monai_mine" or module.startswith("monai_mine.")]


def imports_of(path: Path) -> list[tuple[int, str]]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_of_the_package_has_a_layer():
    tops = {top_level(module_name(path)) for path in package_modules()}
    unclassified = tops - set(LAYERS) - DEPRECATED_ALIASES
    assert not unclassified, f"give these modules a layer in tests/test_layers.py: {sorted(unclassified)}"
    assert not set(LAYERS) & DEPRECATED_ALIASES
    assert tops >= set(LAYERS) | DEPRECATED_ALIASES, f"no longer in the package: {sorted(set(LAYERS) - tops)}"


@pytest.mark.parametrize("path", package_modules(), ids=lambda path: module_name(path))
def test_imports_go_only_downward(path):
    importer = top_level(module_name(path))
    if importer in DEPRECATED_ALIASES:
        return
    wrong = []
    for line, module in imports_of(path):
        target = top_level(module)
        if target in DEPRECATED_ALIASES:
            wrong.append(f"line {line}: {module} is a deprecated alias; import the new home")
        elif module != "monai_mine" and LAYERS[target] > LAYERS[importer]:
            wrong.append(f"line {line}: {module} ({LAYER_NAMES[LAYERS[target]]})")
    assert not wrong, f"{module_name(path)} ({LAYER_NAMES[LAYERS[importer]]}) imports upward: " + "; ".join(wrong)


@pytest.mark.parametrize("name", sorted(DEPRECATED_ALIASES))
def test_a_deprecated_alias_imports_nothing_but_the_alias_helper(name):
    module = PACKAGE / name
    path = module / "__init__.py" if module.is_dir() else module.with_suffix(".py")
    assert not module.is_dir() or sorted(p.name for p in module.iterdir() if p.suffix == ".py") == ["__init__.py"]
    assert [module for _, module in imports_of(path)] == ["monai_mine._deprecated"]


def test_the_checker_sees_lazy_relative_and_dynamic_imports():
    source = (
        "import importlib\n"
        "import torch\n"
        "from . import batch\n"
        "from ..flows import warp\n"
        "from monai_mine import apps\n"
        "def later():\n"
        "    from monai_mine.apps.cli import main\n"
        "    return importlib.import_module('monai_mine.apps.demo')\n"
    )
    assert imported_modules(source, "monai_mine.engines.fake") == [
        (3, "monai_mine.engines"),
        (4, "monai_mine.flows"),
        (5, "monai_mine"),
        (5, "monai_mine.apps"),
        (7, "monai_mine.apps.cli"),
        (8, "monai_mine.apps.demo"),
    ]
    assert imported_modules("from .datalist import x\n", "monai_mine.data", package=True) == [
        (1, "monai_mine.data.datalist")
    ]
