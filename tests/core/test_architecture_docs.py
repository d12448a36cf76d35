"""docs/ARCHITECTURE.md and docs/HOW-TO-ADD-A-METHOD.md kept honest: every file, module, class,
attribute and hook they name exists; the floors the architecture page lists are the layers
contract lint-imports enforces; the tiny method of the contract test is built by exactly the
documented steps; and a method of the package is named by no file outside its documented ones."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from focusstudio.core.methods import _deep_serial
from focusstudio.core.methods.base import FusionMethod
from focusstudio.core.methods.registry import NetworkSpec, list_specs
from focusstudio.core.training.recipe import TrainRecipe

try:
    import tomllib
except ImportError:  # Python 3.10: the backport (import-linter reads pyproject.toml with it there)
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
HOW_TO = (ROOT / "docs" / "HOW-TO-ADD-A-METHOD.md").read_text(encoding="utf-8")
PACKAGE_SPECS = [spec for spec in list_specs() if spec.factory.__module__.startswith("focusstudio.")]
DEEP_SPECS = [spec for spec in PACKAGE_SPECS if spec.network is not None]


def _code_names(text: str) -> set[str]:
    """Everything the page writes as inline code."""
    return set(re.findall(r"`([^`\n]+)`", text))


def _checked_table(text: str, marker: str) -> list[str]:
    """First-column names of the table after ``<!-- check: marker -->``."""
    start = text.index(f"<!-- check: {marker} -->")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        found = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if found:
            rows.append(found.group(1))
    assert rows, f"no table after the {marker!r} marker"
    return rows


def _resolves(dotted: str) -> bool:
    """A module, or an attribute reached from the longest importable module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
        except AttributeError:
            return False
        return True
    return False


def _layers_contract() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layered = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    assert len(layered) == 1
    return layered[0]


# ============================================================================ ARCHITECTURE.md
def test_every_path_the_architecture_page_names_exists() -> None:
    paths = [name for name in _code_names(ARCHITECTURE) if name.startswith("focusstudio/")]
    assert len(paths) > 30
    missing = [path for path in paths if not (ROOT / path.rstrip("/")).exists()]
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"


def test_the_floors_on_the_page_are_the_layers_lint_imports_enforces() -> None:
    block = ARCHITECTURE.split("<!-- floors:", 1)[1].split("```", 2)[1]
    on_page = [line.strip() for line in block.strip().splitlines()]
    contract = _layers_contract()
    assert on_page == contract["layers"]
    # Every room of the core has a floor (the contract is exhaustive; this says it to a reader).
    core = ROOT / "focusstudio" / "core"
    rooms = {p.stem for p in core.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in core.iterdir() if (p / "__init__.py").is_file()
    }
    placed = {room.strip() for floor in on_page for room in floor.split("|")}
    assert rooms == placed


def test_every_declared_exception_to_the_floors_is_explained_on_the_page() -> None:
    for rule in _layers_contract().get("ignore_imports", []):
        importer, imported = (side.strip().removeprefix("focusstudio.core.") for side in rule.split("->"))
        assert f"`{importer} → {imported}`" in ARCHITECTURE, rule


# ======================================================================= HOW-TO-ADD-A-METHOD.md
def test_every_module_and_symbol_the_how_to_names_imports() -> None:
    dotted = [name for name in _code_names(HOW_TO) if re.fullmatch(r"focusstudio(\.\w+)+", name)]
    assert len(dotted) >= 8
    assert [name for name in dotted if not _resolves(name)] == []
    fixed = [name for name in _code_names(HOW_TO) if name.startswith("focusstudio/") and "<" not in name]
    assert fixed and all((ROOT / path).exists() for path in fixed), fixed


def test_the_documented_tables_match_the_code() -> None:
    assert set(_checked_table(HOW_TO, "NetworkSpec fields")) == {f.name for f in dataclasses.fields(NetworkSpec)}
    attributes = _checked_table(HOW_TO, "class attributes")
    assert all(hasattr(FusionMethod, name) or name in inspect.get_annotations(FusionMethod) for name in attributes)
    hooks = set(_checked_table(HOW_TO, "SerialDecisionMethod hooks"))
    assert hooks == set(_deep_serial.SerialDecisionMethod.__abstractmethods__)
    assert all(callable(getattr(TrainRecipe, hook, None)) for hook in _checked_table(HOW_TO, "TrainRecipe hooks"))
    # The constants the page names: the shared post-processing declarations, the Dask tile analyses,
    # the contract test's per-method settings (and each method module's NETWORK: checked per method).
    homes = [importlib.import_module(m) for m in (
        "focusstudio.core.ops.params", "focusstudio.core.batch.distributed", "tests.core.test_method_contract")]
    named = [n for n in _code_names(HOW_TO) if re.fullmatch(r"[A-Z][A-Z_]+", n) and n != "NETWORK"]
    assert len(named) >= 6 and all(any(hasattr(home, n) for home in homes) for n in named), named


@pytest.mark.parametrize("spec", DEEP_SPECS, ids=lambda spec: spec.name)
def test_every_deep_method_of_the_package_has_the_documented_files(spec: Any) -> None:
    name = spec.name
    files = [n.replace("<name>", name) for n in _code_names(HOW_TO) if n.startswith("focusstudio/") and "<name>" in n]
    assert f"focusstudio/core/methods/archs/{name}_arch.py" in files
    for path in files:
        if "/recipes/" in path and not spec.trainable:
            continue
        assert (ROOT / path).is_file(), path
    if spec.trainable:
        assert spec.recipe.startswith(f"focusstudio.core.training.recipes.{name}:")
    import_line = re.search(r"```python\n(.+?)\n```", HOW_TO).group(1).replace("<name>", name)
    assert import_line in (ROOT / "focusstudio/core/methods/__init__.py").read_text(encoding="utf-8")
    cls = type(spec.create())
    assert cls.__module__ == f"focusstudio.core.methods.{name}" and cls.network_spec is spec.network
    assert importlib.import_module(cls.__module__).NETWORK is spec.network  # the page's NETWORK = NetworkSpec(...)
    for attribute in _checked_table(HOW_TO, "class attributes"):
        assert attribute in {k for c in cls.__mro__[:-1] if c.__module__.startswith("focusstudio.core.methods.")
                             and c is not FusionMethod for k in vars(c)}, (name, attribute)


@pytest.mark.parametrize("spec", PACKAGE_SPECS, ids=lambda spec: spec.name)
def test_no_file_outside_the_documented_ones_imports_a_method(spec: Any) -> None:
    """Adding a method touches only its own files: nothing in the CLI, the window, the pipeline or
    the trainer imports a method's module or its network. Shared plumbing of core/methods/ may, and
    so may any file the page names as an optional extra (it then says so to the reader)."""
    name = spec.name
    pattern = re.compile(
        rf"(methods\.archs\.{name}_arch\b|archs import {name}_arch\b|methods\.{name}\b|methods import {name}\b"
        rf"|recipes\.{name}\b|recipes import {name}\b)"
    )
    allowed_recipes = f"focusstudio/core/training/recipes/{name}"
    offenders = [
        str(path.relative_to(ROOT)) for path in sorted((ROOT / "focusstudio").rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
        and not str(path.relative_to(ROOT)).startswith(("focusstudio/core/methods/", allowed_recipes))
        and str(path.relative_to(ROOT)) not in _code_names(HOW_TO)
    ]
    assert offenders == []


def test_the_contract_tests_tiny_method_follows_the_documented_steps() -> None:
    from torch import nn

    contract = importlib.import_module("tests.core.test_method_contract")
    tiny, net, recipe = contract.TinyMethod, contract.TinyNet, contract.TinyRecipe
    # Step 1: a pure nn.Module; step 2: its NetworkSpec and the class with every documented attribute.
    assert issubclass(net, nn.Module) and isinstance(tiny.network_spec, NetworkSpec)
    assert isinstance(tiny.network_spec.build({}), net)
    assert all(attribute in vars(tiny) for attribute in _checked_table(HOW_TO, "class attributes"))
    assert issubclass(tiny, _deep_serial.SerialDecisionMethod)
    assert all(hook in vars(tiny) for hook in _checked_table(HOW_TO, "SerialDecisionMethod hooks"))
    # Step 3: the recipe, named by its import path, with every documented hook of its own.
    module_name, _, class_name = tiny.training_recipe.partition(":")
    assert getattr(importlib.import_module(module_name), class_name) is recipe
    assert issubclass(recipe, TrainRecipe) and recipe.name == tiny.name
    assert all(hook in vars(recipe) for hook in _checked_table(HOW_TO, "TrainRecipe hooks"))
    # Step 4 from outside the package: register_method(MethodSpec.of(...)), as the page says.
    source = inspect.getsource(contract)
    assert "register_method(MethodSpec.of(TinyMethod))" in source
    assert "register_method(MethodSpec.of(MyMethod))" in HOW_TO
