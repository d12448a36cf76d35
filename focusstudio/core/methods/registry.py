"""The one registry of fusion methods: a :class:`MethodSpec` per method, keyed by name.

A spec says everything the rest of FocusStudio needs to know about a method — its name, title,
family, parameters and map names, how to make an instance, and for a deep method how to build its
network from an arch dict, how to read a bare state dict's arch, how to translate the authors'
released checkpoints (:class:`NetworkSpec`) and where its training recipe lives. It plays the part
of timm's ``register_model`` + pretrained config + checkpoint filter function: the checkpoint
loader (:mod:`focusstudio.core.methods.checkpoint`), the training recipes and the list of
trainable methods all read the spec instead of a per-method ``if name ==`` chain.

Listing methods (and trainable methods) imports no torch: a spec holds plain callables whose
bodies import the architecture, and the recipe as an import path (``"package.module:Class"``).

Built-in methods register with the :func:`register` class decorator (the spec is read from the
class); :mod:`focusstudio.core.methods` imports every method module explicitly (no directory
scanning: it breaks in frozen apps). Anything else can add a method with :func:`register_method`.

Adding a deep method to the package touches four files: ``archs/<name>_arch.py`` (the
``nn.Module``), ``methods/<name>.py`` (``build_network``/``infer_arch``/``convert_official`` in a
:class:`NetworkSpec`, the class with its params, maps, ``predict``/``decide``, decorated with
``@register``), ``training/recipes/<name>.py`` if trainable (named by ``training_recipe``), and one
import line in ``methods/__init__.py``. ``tests/core/test_method_contract.py`` then runs the whole
contract on it; its tiny test-only method shows the same path from outside the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.methods.base import FusionMethod, MethodFamily
from focusstudio.core.params import ParamSet

if TYPE_CHECKING:
    import torch
    from torch import nn

    from focusstudio.core.training.recipe import TrainRecipe

#: Builds the network from an arch mapping (missing keys = the default size; unknown keys ignored).
NetworkBuilder = Callable[[Mapping[str, Any]], "nn.Module"]
#: Reads the arch of a bare state dict of ours (no stored arch) from its tensor shapes.
ArchInference = Callable[[Mapping[str, Any]], dict[str, Any]]
#: Recognises an authors' released state dict and returns (our state dict, its arch), or None when
#: the state dict is not theirs. Raises :class:`~focusstudio.core.errors.WeightsError` for a file
#: that looks like theirs but holds unknown keys.
OfficialConverter = Callable[[Mapping[str, Any]], "tuple[dict[str, torch.Tensor], dict[str, Any]] | None"]


@dataclass(frozen=True)
class NetworkSpec:
    """How a deep method's network is made and filled from a checkpoint."""

    build: NetworkBuilder
    infer_arch: ArchInference | None = None
    convert_official: OfficialConverter | None = None
    #: Key prefixes a checkpoint may leave out (SESF's decoder is only needed for training).
    optional_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodSpec:
    """Everything about one method, in one place."""

    name: str
    title: str
    family: MethodFamily
    #: Makes a fresh method instance (the method class itself, or a lazy factory).
    factory: Callable[[], FusionMethod]
    params: ParamSet
    map_names: tuple[str, ...] = ()
    #: The network of a deep method (None for classical methods).
    network: NetworkSpec | None = None
    #: ``"package.module:Class"`` of the training recipe, imported only when training; None = not
    #: trainable. The recipe's ``name`` must be the method's.
    recipe: str | None = None

    @property
    def trainable(self) -> bool:
        return self.recipe is not None

    @classmethod
    def of(cls, method: type[FusionMethod]) -> MethodSpec:
        """The spec a method class declares (its class attributes)."""
        return cls(
            name=method.name, title=method.title, family=method.family, factory=method,
            params=method.params, map_names=tuple(method.map_names),
            network=method.network_spec, recipe=method.training_recipe,
        )

    def create(self) -> FusionMethod:
        return self.factory()

    def build_network(self, arch: Mapping[str, Any] | None = None) -> nn.Module:
        """A fresh network of this method from ``arch`` (None = the default size)."""
        if self.network is None:
            raise FocusStudioError(f"method '{self.name}' has no network")
        return self.network.build(dict(arch or {}))

    def load_recipe(self) -> TrainRecipe:
        """A fresh instance of this method's training recipe (imports torch)."""
        if self.recipe is None:
            raise InputError(f"method {self.name!r} is not trainable; trainable: {', '.join(trainable_methods())}")
        module_name, _, class_name = self.recipe.partition(":")
        recipe = getattr(importlib.import_module(module_name), class_name)()
        if recipe.name != self.name:
            raise ValueError(f"{self.recipe} trains {recipe.name!r}, not {self.name!r}")
        return recipe


_SPECS: dict[str, MethodSpec] = {}

M = TypeVar("M", bound=type[FusionMethod])


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method to the registry (the public way to add one from outside the package)."""
    if not spec.name.isidentifier():
        raise ValueError(f"method name must be an identifier: {spec.name!r}")
    if spec.family == "deep" and spec.network is None:
        raise ValueError(f"deep method {spec.name!r} needs a NetworkSpec")
    if spec.recipe is not None and ":" not in spec.recipe:
        raise ValueError(f"recipe of {spec.name!r} must be 'package.module:Class', got {spec.recipe!r}")
    known = _SPECS.get(spec.name)
    if known is not None and known.factory is not spec.factory:
        raise ValueError(f"method name {spec.name!r} registered twice")
    _SPECS[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a method added with :func:`register_method` (tests, plug-ins being unloaded)."""
    _SPECS.pop(name, None)


def register(cls: M) -> M:
    """Class decorator adding a method to the registry under ``cls.name`` (spec from the class)."""
    register_method(MethodSpec.of(cls))
    return cls


def _ensure_loaded() -> None:
    import focusstudio.core.methods  # noqa: F401  (imports every method module)


def list_specs() -> list[MethodSpec]:
    """Every registered method's spec, in registration order."""
    _ensure_loaded()
    return list(_SPECS.values())


def list_methods() -> list[str]:
    """Names of every registered method, in registration order."""
    return [spec.name for spec in list_specs()]


def trainable_methods() -> list[str]:
    """Names of the methods with a training recipe, sorted (imports no torch)."""
    return sorted(spec.name for spec in list_specs() if spec.trainable)


def get_spec(name: str) -> MethodSpec:
    """The spec of the method called ``name``; unknown names list the valid ones."""
    _ensure_loaded()
    try:
        return _SPECS[name]
    except KeyError:
        raise FocusStudioError(f"unknown method '{name}'; valid: {', '.join(_SPECS)}") from None


def get_method(name: str) -> FusionMethod:
    """A fresh instance of the method called ``name``; unknown names list the valid ones."""
    return get_spec(name).create()
