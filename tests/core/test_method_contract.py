"""The contract every registered method keeps, parametrised over the registry (issue 14).

Every method builds (a deep one from tiny random weights written to a checkpoint and read by the
one loader), fuses 2- and 3-frame stacks through :mod:`focusstudio.core.pipeline` giving only the
maps its spec declares, gives the same result with forced small tiles, and — deep methods — reads
its checkpoint back in our format and as a plain state dict with the same outputs; every trainable
method's loss falls in a few steps and its exported weights fuse.

The tiny test-only method at the top is added through the public registry
(:func:`~focusstudio.core.methods.registry.register_method`) and passes the same contract: it is the
"how to add a method" path, step by step as docs/HOW-TO-ADD-A-METHOD.md gives it (which
tests/core/test_architecture_docs.py checks it against). A method of the package is the same three
parts — its module (spec, ``predict_pair``, ``decide``), its arch file and, if trainable, its
recipe — plus one import line in ``focusstudio/core/methods/__init__.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from focusstudio.core.methods._deep_serial import SerialDecisionMethod, threshold_and_clean
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.checkpoint import clear_cache, load_network
from focusstudio.core.methods.registry import (
    MethodSpec,
    NetworkSpec,
    get_spec,
    list_methods,
    list_specs,
    register_method,
    trainable_methods,
    unregister_method,
)
from focusstudio.core.methods.tensors import to_numpy, to_tensor
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.pipeline import fuse
from focusstudio.core.progress import ProgressGen, ProgressRange
from focusstudio.core.training.losses import l1_loss
from focusstudio.core.training.manifest import read_manifest, save_weights
from focusstudio.core.training.recipe import Batch, RecipeDefaults, TrainRecipe
from focusstudio.core.training.synthesis import SynthesisConfig
from focusstudio.core.training.trainer import train
from focusstudio.core.types import FusionResult, Stack, to_grey
from tests.conftest import build_focus_stack
from tests.core.test_training_deep_b import SMALL, _config, _run, image_folder  # noqa: F401  (fixture)

if TYPE_CHECKING:
    from focusstudio.core.training.trainer import TrainConfig

# Tiny convolutions on a shared 2-core machine: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ====================================================================== a method added from outside
# Step 1, the network (archs/<name>_arch.py in the package): a pure nn.Module.
class TinyNet(nn.Module):
    """One 3×3 convolution of the two grey frames, then a sigmoid: the weight of the first."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([first, second], dim=1)))


# Step 2, the method module (methods/<name>.py): the NetworkSpec's functions, then the class.
def build_tiny(arch: Mapping[str, Any]) -> TinyNet:
    return TinyNet(width=int(arch.get("width", 2)))


def infer_tiny(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"width": int(state["conv.weight"].shape[1])}


class TinyMethod(SerialDecisionMethod):
    """The smallest deep method: its spec, its ``predict_pair`` and its ``decide``."""

    name = "tiny_contract"
    title = "Tiny contract method (test only)"
    description = "One convolution predicts the weight of the first frame; threshold; serial N frames."
    params = ParamSet((
        ParamSpec("threshold", "float", 0.5, "weight above which the first frame is taken",
                  minimum=0.0, maximum=1.0, stage="post"),
    ))
    soft_map_name = "weight"
    map_names: ClassVar[tuple[str, ...]] = ("weight", "decision_raw", "decision", "index", "weight_{j}")
    network_spec = NetworkSpec(build_tiny, infer_arch=infer_tiny)
    training_recipe = "tests.core.test_method_contract:TinyRecipe"

    def predict_pair(
        self, network: nn.Module, first: np.ndarray, second: np.ndarray, context: RunContext,
        progress: ProgressRange,
    ) -> ProgressGen[np.ndarray]:
        with torch.inference_mode():
            weight = to_numpy(network(to_tensor(to_grey(first), context.device),
                                      to_tensor(to_grey(second), context.device)))
        yield progress.event("network", 1.0, "tiny forward pass")
        return weight

    def post_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"threshold": params["threshold"]}

    def decide(self, soft: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        return threshold_and_clean(soft, params["threshold"], 0.0)


# Step 3, the training recipe (training/recipes/<name>.py), named by the class's training_recipe.
class TinyRecipe(TrainRecipe):
    """L1 of the soft-fused grey image against the sharp one (the network comes from the spec)."""

    name = "tiny_contract"
    description = "tiny contract method"
    data_kind = "images+masks"
    grey = True
    loss_description = "L1(w·A + (1 − w)·B, sharp)"

    def defaults(self) -> RecipeDefaults:
        return RecipeDefaults(batch_size=2, crop=32, resize=48, steps=10, val_every=1000, val_samples=2)

    def synthesis(self, config: TrainConfig) -> SynthesisConfig:
        overrides = {"mode": "plain", "grey": True, "resize": config.resize, "crop": config.crop,
                     "blur": "gaussian", "sigma_range": (1.0, 2.0), **config.synthesis}
        return SynthesisConfig.from_dict({**SynthesisConfig().to_dict(), **overrides})

    def model_config(self, config: TrainConfig) -> dict[str, Any]:
        return {"width": 2}

    def loss(self, model: nn.Module, batch: Batch, config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
        weight = model(batch["a"], batch["b"])
        return l1_loss(weight * batch["a"] + (1.0 - weight) * batch["b"], batch["sharp"]), {}

    def validation_scores(self, model: nn.Module, batch: Batch, config: TrainConfig) -> dict[str, float]:
        return {"loss": float(self.loss(model, batch, config)[0])}


# Step 4 from outside the package: register_method instead of @register and the import line.
@pytest.fixture(autouse=True)
def tiny_method() -> Iterator[MethodSpec]:
    """The tiny method is registered for each test of this module only (other tests list methods)."""
    spec = register_method(MethodSpec.of(TinyMethod))
    yield spec
    unregister_method(spec.name)
    clear_cache()


METHODS = [*list_methods(), TinyMethod.name]
DEEP = [*(spec.name for spec in list_specs() if spec.network is not None), TinyMethod.name]
TRAINABLE = [*trainable_methods(), TinyMethod.name]

#: Tiny configurations of the deep networks (a method not listed is built at its default size).
TINY_ARCH: dict[str, dict[str, Any]] = {
    "mfifgan": {"width": 4, "blocks": 2, "se_reduction": 2},
    "ufa": {"width": 8},
    "twostream": {"width": 8, "head_width": 8},
}

#: Tiled vs untiled: (relative tolerance of the image and continuous maps, share of the pixels of
#: decision, index and mask maps — and of the image — allowed to differ beyond it). Exact tilers
#: differ by float32 rounding only (a halo covering the receptive field, global statistics taken over
#: the whole image first): sums of a few hundred terms, relative error ~1e-6, bounded here by 1e-4.
#: A decision can still flip where a map sits on its threshold, hence a small share. MFIF-GAN's tiles
#: share squeeze-excitation gates taken from a downscaled copy of the whole image (mfifgan.py), so
#: its maps are an approximation of the untiled ones.
TILE_TOLERANCE: dict[str, tuple[float, float]] = {"mfifgan": (0.05, 0.05)}
EXACT_TILING = (1e-4, 0.005)
_DISCRETE_MAPS = ("decision", "index", "mask")

#: Training settings that make the loss fall in a few steps: (steps, learning rate, watched loss,
#: options; tiny widths from tests/core/test_training_deep_b.py). MFIF-GAN: the L1 term is what the
#: generator steps (every 5th) lower; the logged generator loss also moves with the critic. UFA-Fuse
#: starts from its identity initialisation (the mix of its inputs), which a larger rate first undoes.
TRAINING: dict[str, tuple[int, float, str, dict[str, Any]]] = {
    "mfifgan": (20, 2e-3, "l1", SMALL["mfifgan"]),
    "ufa": (20, 1e-3, "loss", SMALL["ufa"]),
    "twostream": (10, 2e-3, "loss", SMALL["twostream"]),
}
DEFAULT_TRAINING = (12, 2e-3, "loss", {})


def _weights(name: str, folder: Path, seed: int = 0) -> Path | None:
    """Tiny random weights of a deep method in our trainer's format (None for classical ones)."""
    spec = get_spec(name)
    if spec.network is None:
        return None
    torch.manual_seed(seed)
    arch = TINY_ARCH.get(name, {})
    network = spec.build_network(arch)
    path = folder / f"{name}_tiny.pt"
    save_weights(path, name, {**arch, "method": name}, network.state_dict())
    return path


def _stack(frames: int) -> Stack:
    return build_focus_stack(frames, size=40, seed=frames, colour=True, dtype="uint8").stack


def _declared(spec: MethodSpec) -> list[re.Pattern[str]]:
    """The spec's map names as patterns: ``{i}``, ``{j}``, ``{k}`` stand for frame/step numbers."""
    return [re.compile(re.sub(r"\\\{\w+\\\}", r"\\d+", re.escape(name)) + "$") for name in spec.map_names]


def _assert_same(first: FusionResult, second: FusionResult, atol: float) -> None:
    assert np.allclose(first.image, second.image, atol=atol)
    assert first.maps.keys() == second.maps.keys()
    for key, fusion_map in first.maps.items():
        assert np.allclose(fusion_map.data, second.maps[key].data, atol=atol), key


# ============================================================================ the contract
@pytest.mark.parametrize("name", METHODS)
def test_the_spec_describes_the_method(name: str) -> None:
    spec = get_spec(name)
    method = spec.create()
    assert (method.name, method.title, method.family) == (spec.name, spec.title, spec.family)
    assert method.params is spec.params and tuple(method.map_names) == spec.map_names and spec.map_names
    assert (spec.network is not None) == (spec.family == "deep")
    if spec.trainable:
        recipe = spec.load_recipe()
        assert recipe.name == name


@pytest.mark.parametrize("frames", [2, 3])
@pytest.mark.parametrize("name", METHODS)
def test_fuses_two_and_three_frames_with_the_declared_maps(name: str, frames: int, tmp_path: Path) -> None:
    spec = get_spec(name)
    stack = _stack(frames)
    result = fuse(stack, name, weights=_weights(name, tmp_path), device="cpu")
    assert result.image.shape == (*stack.shape, 3) and np.isfinite(result.image).all()
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert result.maps, f"{name} gave no maps with {frames} frames"
    patterns = _declared(spec)
    for key, fusion_map in result.maps.items():
        assert any(p.match(key) for p in patterns), f"{name}: map {key!r} is not in its spec {spec.map_names}"
        assert fusion_map.data.shape[:2] == stack.shape and np.isfinite(fusion_map.data).all(), key


@pytest.mark.parametrize("name", METHODS)
def test_tiled_equals_untiled(name: str, tmp_path: Path) -> None:
    """Forced 16-pixel tiles (40×40 frames: 9 tiles where the method tiles) change nothing beyond
    the method's tolerance; a method that does not tile must give the same result anyway."""
    stack, weights = _stack(2), _weights(name, tmp_path)
    whole = fuse(stack, name, weights=weights, device="cpu")
    tiled = fuse(stack, name, weights=weights, device="cpu", tile_size=16)
    rtol, share = TILE_TOLERANCE.get(name, EXACT_TILING)
    assert tiled.maps.keys() == whole.maps.keys()
    pairs = [("image", whole.image, tiled.image, False)] + [
        (key, m.data, tiled.maps[key].data, m.kind in _DISCRETE_MAPS) for key, m in whole.maps.items()
    ]
    for key, expected, actual, discrete in pairs:
        scale = float(np.abs(expected).max()) or 1.0
        differs = np.abs(expected.astype(np.float64) - actual) > rtol * scale
        if discrete or key == "image":
            assert differs.mean() <= share, f"{name} {key}: {differs.mean():.2%} of the pixels differ"
        else:
            assert not differs.any(), f"{name} {key}: differs by more than {rtol} of its range"


@pytest.mark.parametrize("name", DEEP)
def test_a_checkpoint_round_trips(name: str, tmp_path: Path) -> None:
    spec = get_spec(name)
    ours = _weights(name, tmp_path)
    assert ours is not None
    network, kind = load_network(name, ours)
    assert kind == "focusstudio" and not network.training
    torch.manual_seed(0)
    original = spec.build_network(TINY_ARCH.get(name, {})).state_dict()
    assert all(torch.equal(value, network.state_dict()[key]) for key, value in original.items())
    # Saved again as a bare state dict: the arch is read back from the shapes (or is the default).
    plain = tmp_path / "plain.pt"
    torch.save(network.state_dict(), plain)
    again, kind = load_network(name, plain)
    assert kind == "state_dict"
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in original.items())
    stack = _stack(2)
    _assert_same(fuse(stack, name, weights=ours, device="cpu"), fuse(stack, name, weights=plain, device="cpu"),
                 atol=1e-6)


@pytest.mark.parametrize("name", TRAINABLE)
def test_training_lowers_the_loss_and_exports_weights_that_fuse(
    name: str, image_folder: Path, tmp_path: Path  # noqa: F811  (the imported fixture)
) -> None:
    steps, lr, watched, options = TRAINING.get(name, DEFAULT_TRAINING)
    torch.manual_seed(0)
    config = _config(name, image_folder, tmp_path, steps=steps, lr=lr, options=options)
    events, result = _run(train(name, config))
    losses = [event.losses[watched] for event in events if event.phase == "train"]
    assert len(losses) == steps
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert result.status == "completed" and result.weights is not None
    entry = read_manifest(Path(config.out).parent / "manifest.json")["weights"][f"{name}.pt"]
    assert entry["steps"] == steps and entry["loss"]
    # The exported file is what the fusion method loads (its configuration travels with it).
    fused = fuse(_stack(2), name, weights=result.weights, device="cpu")
    assert fused.image.shape == (40, 40, 3) and np.isfinite(fused.image).all()


def test_listing_methods_and_trainable_methods_imports_no_torch() -> None:
    probe = (
        "import sys\n"
        "from focusstudio.core.methods.registry import list_specs, trainable_methods\n"
        "specs = list_specs()\n"
        "assert {'sesf', 'gacn', 'ufa', 'mfifgan', 'twostream'} <= set(trainable_methods())\n"
        "assert all(s.params is not None for s in specs)\n"
        "from focusstudio.core.training.settings import trainable_method_names\n"
        "assert list(trainable_method_names()) == trainable_methods()\n"
        "assert 'torch' not in sys.modules, 'listing methods imported torch'\n"
        "print('ok')\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "ok"


def test_a_method_name_is_registered_once() -> None:
    class Other(TinyMethod):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        register_method(MethodSpec.of(Other))
    with pytest.raises(ValueError, match="needs a NetworkSpec"):
        register_method(MethodSpec("lonely", "Lonely", "deep", TinyMethod, TinyMethod.params))
