"""MFIF-GAN, UFA-Fuse and two-stream: networks, weights loading and inference, with random weights
on tiny inputs (no trained weights needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from focusstudio.core.errors import MethodUnavailableError, WeightsError
from focusstudio.core.methods._deep_serial import threshold_and_clean
from focusstudio.core.methods.archs.mfifgan_arch import (
    CPU_GENERATOR_CONFIG,
    GeneratorConfig,
    MFIFGANCritic,
    MFIFGANGenerator,
    parameter_count,
)
from focusstudio.core.methods.archs.twostream_arch import TwoStreamNet
from focusstudio.core.methods.archs.ufa_arch import (
    OFFICIAL_KEY_PREFIXES,
    UFAFuseNet,
    official_state_dict,
)
from focusstudio.core.methods.base import Analysis, RunContext
from focusstudio.core.methods.mfifgan import halo_for, predict_focus_map
from focusstudio.core.methods.registry import get_method
from focusstudio.core.methods.strategies import SerialChain
from focusstudio.core.methods.tensors import pad_to_multiple
from focusstudio.core.ops.pyramid import PyramidBlend
from focusstudio.core.pipeline import fuse, run_fusion
from focusstudio.core.progress import Cancelled, CancelToken, ProgressRange, run_to_completion
from focusstudio.core.tiling import plan_tiles
from focusstudio.core.training.manifest import save_weights
from focusstudio.core.types import Stack

# Tiny convolutions on a shared 2-core machine: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small_networks() -> dict[str, tuple[torch.nn.Module, dict[str, object]]]:
    torch.manual_seed(0)
    return {
        "mfifgan": (
            MFIFGANGenerator(GeneratorConfig(width=4, blocks=2, se_reduction=2)),
            {"name": "mfifgan", "width": 4, "blocks": 2, "se_reduction": 2},
        ),
        "ufa": (UFAFuseNet(width=8), {"name": "ufa", "width": 8, "official_quirks": False}),
        "twostream": (TwoStreamNet(width=8, head_width=8), {"name": "twostream", "width": 8, "head_width": 8}),
    }


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight checkpoints of small configurations, in our trainer's format."""
    folder = tmp_path_factory.mktemp("weights")
    paths: dict[str, Path] = {}
    for name, (network, arch) in _small_networks().items():
        paths[name] = folder / f"{name}.pt"
        config = {key: value for key, value in arch.items() if key != "name"}
        save_weights(paths[name], name, {**config, "method": name, "trained_steps": 1}, network.state_dict())
    # The other layout of ours: {"state_dict", "arch": {"name", ...}}.
    network, arch = _small_networks()["twostream"]
    paths["twostream_arch_dict"] = folder / "twostream_arch_dict.pt"
    torch.save({"state_dict": network.state_dict(), "arch": arch}, paths["twostream_arch_dict"])
    return paths


def _random_stack(n: int, height: int = 21, width: int = 30, colour: bool = True, seed: int = 1) -> Stack:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if colour else (height, width)
    return Stack.from_arrays([(rng.random(shape) * 255).astype(np.uint8) for _ in range(n)])


# ----------------------------------------------------------------------------- network sizes
def test_full_size_parameter_counts() -> None:
    assert parameter_count(MFIFGANGenerator()) == 13_700_928  # the released generator
    assert parameter_count(MFIFGANCritic(norm="batch", final_sigmoid=True)) == 3_815_105  # released critic
    # Instance norm (our WGAN-GP critic) has the same number of affine parameters as batch norm.
    assert parameter_count(MFIFGANCritic()) == 3_815_105
    # UFA v1: 455,699 in the checkpoint minus the 588 attention weights its forward never uses.
    assert parameter_count(UFAFuseNet()) == 455_111
    # Two-stream at 128/64: two streams (conv 1→128 + four 128→128 convs) + E (128→128)
    # + F (129→128) + G (640→64) + head (64→64, 64→1), all 3×3 with biases.
    conv = lambda c_in, c_out: 9 * c_in * c_out + c_out  # noqa: E731
    expected = 2 * (conv(1, 128) + 4 * conv(128, 128)) + conv(128, 128) + conv(129, 128) + conv(640, 64)
    expected += conv(64, 64) + conv(64, 1)
    assert parameter_count(TwoStreamNet()) == expected == 1_885_761


def test_cpu_generator_config_is_much_smaller() -> None:
    assert parameter_count(MFIFGANGenerator(CPU_GENERATOR_CONFIG)) < 1_000_000


def test_mfifgan_shapes_and_critic_patch_map() -> None:
    generator = MFIFGANGenerator(GeneratorConfig(width=4, blocks=1, se_reduction=2)).eval()
    critic = MFIFGANCritic(width=4)
    a, b = torch.rand(2, 3, 37, 50), torch.rand(2, 3, 37, 50)
    with torch.no_grad():
        focus_map = generator(a, b)
        # Upstream's size rule: 4·⌈⌈H/2⌉/2⌉, larger than an input that is not a multiple of 4.
        assert focus_map.shape == (2, 1, 40, 52)
        assert float(focus_map.min()) > 0.0 and float(focus_map.max()) < 1.0
        assert critic(torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256), torch.rand(1, 1, 256, 256)).shape == (
            1, 1, 6, 6,
        )
        # Grey sources: one plane each, same as three identical planes.
        grey_a, grey_b = a[:, :1], b[:, :1]
        replicated = generator(grey_a.expand(-1, 3, -1, -1), grey_b.expand(-1, 3, -1, -1))
        assert torch.allclose(generator(grey_a, grey_b), replicated, atol=1e-6)


def test_mfifgan_pads_to_multiple_of_four_and_crops_back() -> None:
    generator = MFIFGANGenerator(GeneratorConfig(width=4, blocks=1, se_reduction=2)).eval()
    rng = np.random.default_rng(0)
    a, b = rng.random((21, 30, 3)).astype(np.float32), rng.random((21, 30, 3)).astype(np.float32)
    context = RunContext()
    focus_map = run_to_completion(predict_focus_map(generator, a, b, context, ProgressRange()))
    assert focus_map.shape == (21, 30)
    padded_a, padded_b = pad_to_multiple(a, 4), pad_to_multiple(b, 4)
    assert padded_a.shape == (24, 32, 3)
    with torch.no_grad():
        expected = generator(
            torch.from_numpy(padded_a).permute(2, 0, 1)[None], torch.from_numpy(padded_b).permute(2, 0, 1)[None]
        )[0, 0, :21, :30].numpy()
    np.testing.assert_allclose(focus_map, expected, atol=1e-6)


def test_mfifgan_tiles_match_untiled_with_the_same_gates() -> None:
    """Tiling is exact once every tile uses the whole image's squeeze-excitation gates."""
    torch.manual_seed(0)
    config = GeneratorConfig(width=4, blocks=2, se_reduction=2)
    generator = MFIFGANGenerator(config).eval()
    for module in generator.modules():  # non-trivial eval-mode batch norm
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    a, b = torch.rand(1, 3, 96, 136), torch.rand(1, 3, 96, 136)
    with torch.no_grad():
        with generator.capture_gates() as modules:
            whole = generator(a, b)
            gates = [m.captured for m in modules]
        stitched = torch.empty_like(whole)
        with generator.frozen_gates(gates):  # type: ignore[arg-type]
            for tile in plan_tiles(96, 136, 32, halo_for(config.blocks), align=4):
                out = generator(a[(..., *tile.read)], b[(..., *tile.read)])
                stitched[(..., *tile.write)] = out[(..., *tile.inner)]
    assert torch.allclose(stitched, whole, atol=1e-5)


def test_ufa_attention_is_a_softmax_across_inputs() -> None:
    torch.manual_seed(0)
    network = UFAFuseNet(width=8).eval()
    a, b = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        out = network(a, b)
        quirky = UFAFuseNet(width=8, official_quirks=True)
        quirky.load_state_dict(network.state_dict())
        quirk_out = quirky(a, b)
    assert out.fused.shape == (1, 3, 20, 24)
    assert torch.allclose(out.channel_weights[0] + out.channel_weights[1], torch.ones(1), atol=1e-6)
    assert torch.allclose(out.spatial_weights[0] + out.spatial_weights[1], torch.ones(1), atol=1e-6)
    assert out.spatial_weights[0].shape == (1, 1, 20, 24)
    # The released weights' typo: input 1's spatial weight has exp(s2) twice in its denominator.
    assert not torch.allclose(quirk_out.spatial_weights[0] + quirk_out.spatial_weights[1], torch.ones(1), atol=1e-3)
    assert torch.allclose(quirk_out.spatial_weights[1], out.spatial_weights[1], atol=1e-6)


def test_ufa_official_key_map_covers_the_release_layout() -> None:
    network = UFAFuseNet()
    # Build a state dict with the release's names from ours, plus the unused attention convs.
    reverse = dict(OFFICIAL_KEY_PREFIXES)
    release: dict[str, torch.Tensor] = {}
    for key, value in network.state_dict().items():
        prefix = next(p for p in reverse if key.startswith(p))
        release[reverse[prefix] + key[len(prefix):]] = value
    for block in (1, 2, 3):
        for att in (1, 2):
            release[f"sc{block}.att_sp.att{att}.conv.weight"] = torch.zeros(1, 2, 7, 7)
    assert len(release) == 38 and sum(v.numel() for v in release.values()) == 455_699
    translated = official_state_dict(release)
    assert set(translated) == set(network.state_dict())
    with pytest.raises(KeyError):
        official_state_dict({**release, "sc5.conv1.weight": torch.zeros(1)})


def test_twostream_is_local_and_tiles_exactly() -> None:
    torch.manual_seed(0)
    network = TwoStreamNet(width=8, head_width=8).eval()
    a, b = torch.rand(1, 1, 50, 70), torch.rand(1, 1, 50, 70)
    with torch.no_grad():
        whole = network(a, b)
        stitched = torch.empty_like(whole)
        for tile in plan_tiles(50, 70, 16, network.receptive_radius):
            out = network(a[(..., *tile.read)], b[(..., *tile.read)])
            stitched[(..., *tile.write)] = out[(..., *tile.inner)]
    assert whole.shape == (1, 1, 50, 70)
    assert torch.allclose(stitched, whole, atol=1e-6)


# ----------------------------------------------------------------------------- methods
@pytest.mark.parametrize(
    ("name", "maps"),
    [
        ("mfifgan", {"focus_map", "decision_raw", "decision", "index"}),
        ("twostream", {"alpha", "decision_raw", "decision", "index"}),
        ("ufa", {"spatial_attention_0", "spatial_attention_1", "channel_attention_0", "channel_attention_1",
                 "derived_decision"}),
    ],
)
def test_two_frames_give_the_documented_maps(name: str, maps: set[str], checkpoints: dict[str, Path]) -> None:
    stack = _random_stack(2)
    result = fuse(stack, name, weights=checkpoints[name], device="cpu")
    assert result.image.shape == (21, 30, 3) and result.image.dtype == np.float32
    assert set(result.maps) == maps
    assert result.weights is not None and checkpoints[name].name in result.weights
    for fusion_map in result.maps.values():
        assert fusion_map.data.shape == (21, 30)
    if name == "ufa":
        total = result.maps["spatial_attention_0"].data + result.maps["spatial_attention_1"].data
        np.testing.assert_allclose(total, 1.0, atol=1e-5)
        total = result.maps["channel_attention_0"].data + result.maps["channel_attention_1"].data
        np.testing.assert_allclose(total, 1.0, atol=1e-5)
        assert "derived" in result.maps["derived_decision"].description.lower()
        assert get_method("ufa").decodes_directly
        assert "not built from source pixels" in get_method("ufa").description
        assert result.analysis.data["channel_weights"][0].shape == (2, 8)
    else:
        # Hard fusion: every pixel is a source pixel of the frame the decision names.
        decision = result.maps["decision"].data
        first, second = stack.load(0), stack.load(1)
        np.testing.assert_array_equal(result.image, np.where(decision[..., None] > 0.5, first, second))


@pytest.mark.parametrize("name", ["mfifgan", "twostream", "ufa"])
def test_n_frames_are_fused_serially(name: str, checkpoints: dict[str, Path]) -> None:
    stack = _random_stack(3)
    result = fuse(stack, name, weights=checkpoints[name], device="cpu")
    assert result.image.shape == (21, 30, 3)
    if name == "ufa":
        assert {f"spatial_attention_{k}" for k in range(3)} <= set(result.maps)
        assert result.maps["derived_index"].kind == "index"
        assert len(result.analysis.data["channel_weights"]) == 2  # two serial steps
        return
    soft = "focus_map" if name == "mfifgan" else "alpha"
    assert {f"{soft}_1", f"{soft}_2", "index"} <= set(result.maps)
    index = result.maps["index"].data
    frames = [stack.load(i) for i in range(3)]
    # N > 2: the hard selection composed by pyramid blending (no seams where the frame switches)
    blend = PyramidBlend(21, 30)
    for i, frame in enumerate(frames):
        blend.add(frame, (index == i).astype(np.float32))
    np.testing.assert_allclose(result.image, np.clip(blend.result(), 0.0, 1.0), atol=1e-5)
    # Serial: step 2 compares the running result with frame 2; its map is a new network output.
    assert not np.array_equal(result.maps[f"{soft}_1"].data, result.maps[f"{soft}_2"].data)


def _crafted_chain_analysis(name: str, soft: np.ndarray, stack: Stack, weights: Path) -> Analysis:
    """An analysis whose cached map is ``soft`` and whose post-processing is marked stale, so
    ``finish`` re-derives the decision from ``soft`` (no network for two frames). It names the
    weights it was made with, as a real one does, so the pipeline reuses it for those weights."""
    chain = SerialChain([soft], [soft], stack.load(0), None)
    method = get_method(name)
    params = method.params.defaults()
    return Analysis(
        name, method.analysis_params(params), data={"chain": chain, "post": {"stale": True}},
        weights=method.weights_label(weights),
    )


@pytest.mark.parametrize("name", ["mfifgan", "twostream"])
def test_small_region_removal_in_both_polarities(name: str, checkpoints: dict[str, Path]) -> None:
    height, width = 60, 80
    soft = np.full((height, width), 0.2, dtype=np.float32)
    soft[:, :40] = 0.9  # left half: frame 0
    soft[10:12, 60:62] = 0.8  # a 4-pixel island of frame 0 in frame 1's half
    soft[30:32, 10:12] = 0.1  # a 4-pixel hole of frame 1 in frame 0's half
    stack = _random_stack(2, height, width)
    params = {"use_srr": True} if name == "twostream" else {}
    params["area_fraction"] = 0.002  # 9.6 px > 4 px regions
    analysis = _crafted_chain_analysis(name, soft, stack, checkpoints[name])
    result = run_to_completion(
        run_fusion(stack, name, params, device="cpu", weights=checkpoints[name], analysis=analysis)
    )
    raw, decision = result.maps["decision_raw"].data, result.maps["decision"].data
    assert raw[10, 60] == 1.0 and raw[30, 10] == 0.0
    expected = np.zeros((height, width), dtype=np.float32)
    expected[:, :40] = 1.0
    np.testing.assert_array_equal(decision, expected)
    np.testing.assert_array_equal(result.image, np.where(expected[..., None] > 0, stack.load(0), stack.load(1)))
    # A threshold is strict: 0.8 is not above 0.8.
    raw_strict, _ = threshold_and_clean(soft, 0.8, 0.0)
    assert not raw_strict[10, 60]


def test_twostream_srr_off_by_default_and_soft_alpha(checkpoints: dict[str, Path]) -> None:
    soft = np.full((40, 40), 0.3, dtype=np.float32)
    soft[5:7, 5:7] = 0.7
    stack = _random_stack(2, 40, 40)
    result = run_to_completion(run_fusion(
        stack, "twostream", {}, device="cpu", weights=checkpoints["twostream"],
        analysis=_crafted_chain_analysis("twostream", soft, stack, checkpoints["twostream"]),
    ))
    assert result.maps["decision"].data[5, 5] == 1.0  # island kept: no SRR by default
    soft_result = run_to_completion(run_fusion(
        stack, "twostream", {"soft_alpha": True}, device="cpu", weights=checkpoints["twostream"],
        analysis=_crafted_chain_analysis("twostream", soft, stack, checkpoints["twostream"]),
    ))
    blend = soft[..., None] * stack.load(0) + (1 - soft[..., None]) * stack.load(1)
    np.testing.assert_allclose(soft_result.image, blend, atol=1e-6)


def test_post_only_change_reuses_the_network_output(checkpoints: dict[str, Path]) -> None:
    stack = _random_stack(2)
    first = fuse(stack, "mfifgan", weights=checkpoints["mfifgan"], device="cpu")
    focus_map = first.maps["focus_map"].data
    again = run_to_completion(run_fusion(
        stack, "mfifgan", {"threshold": 0.3}, device="cpu", weights=checkpoints["mfifgan"],
        analysis=first.analysis,
    ))
    assert "analyze" not in again.timings
    np.testing.assert_array_equal(again.maps["focus_map"].data, focus_map)
    np.testing.assert_array_equal(again.maps["decision_raw"].data, (focus_map > 0.3).astype(np.float32))


def test_tiled_methods_match_untiled(checkpoints: dict[str, Path]) -> None:
    """UFA-Fuse (two-pass exact channel attention) and two-stream tile exactly; MFIF-GAN tiles run
    with gates from a downscaled pre-pass and say so in the notes."""
    stack = _random_stack(2, 40, 52)
    for name in ("ufa", "twostream"):
        whole = fuse(stack, name, weights=checkpoints[name], device="cpu")
        tiled = fuse(stack, name, weights=checkpoints[name], device="cpu", tile_size=16)
        assert any("tiles" in note for note in tiled.notes)
        np.testing.assert_allclose(tiled.image, whole.image, atol=1e-5)
        for key, fusion_map in whole.maps.items():
            np.testing.assert_allclose(tiled.maps[key].data, fusion_map.data, atol=1e-5)
    tiled = fuse(stack, "mfifgan", weights=checkpoints["mfifgan"], device="cpu", tile_size=16)
    assert any("squeeze-excitation" in note for note in tiled.notes)
    assert tiled.maps["focus_map"].data.shape == (40, 52)


def test_ufa_grey_and_16_bit(checkpoints: dict[str, Path]) -> None:
    rng = np.random.default_rng(3)
    frames = [(rng.random((16, 20)) * 65535).astype(np.uint16) for _ in range(2)]
    result = fuse(Stack.from_arrays(frames), "ufa", weights=checkpoints["ufa"], device="cpu")
    assert result.image.ndim == 2  # grey in, grey out (mean of the three decoded channels)
    assert result.rounding == "truncate"
    out = result.as_dtype()
    assert out.dtype == np.uint16
    # Direct decoding: the values are the network's, not copies of the sources.
    assert not np.isin(out, np.stack(frames)).all()


def test_grey_stack_for_decision_methods(checkpoints: dict[str, Path]) -> None:
    stack = _random_stack(2, colour=False)
    for name in ("mfifgan", "twostream"):
        result = fuse(stack, name, weights=checkpoints[name], device="cpu")
        assert result.image.shape == (21, 30)


def test_cancel_stops_the_run(checkpoints: dict[str, Path]) -> None:
    for name in ("mfifgan", "ufa", "twostream"):
        token = CancelToken()
        run = run_fusion(_random_stack(3), name, device="cpu", weights=checkpoints[name], cancel=token,
                         tile_size=16)
        next(run)
        token.cancel()
        with pytest.raises(Cancelled):
            run_to_completion(run)


# ----------------------------------------------------------------------------- weights
def test_missing_weights_say_which_file_and_how_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOCUSSTUDIO_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user"))  # no user-installed weights either
    for name in ("mfifgan", "ufa", "twostream"):
        available, reason = get_method(name).availability()
        assert not available
        assert f"{name}.pt" in reason and "train" in reason
        with pytest.raises(MethodUnavailableError):
            fuse(_random_stack(2), name, device="cpu")


def test_bare_state_dict_of_a_narrow_config_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    narrow = {
        "mfifgan": MFIFGANGenerator(GeneratorConfig(width=4, blocks=3, se_reduction=2)),
        "twostream": TwoStreamNet(width=6, head_width=4),
        "ufa": UFAFuseNet(width=6),
    }
    for name, network in narrow.items():
        path = tmp_path / f"{name}_plain.pt"
        torch.save(network.state_dict(), path)
        result = fuse(_random_stack(2), name, weights=path, device="cpu")
        assert result.image.shape == (21, 30, 3)


def test_checkpoint_with_an_arch_mapping_loads(checkpoints: dict[str, Path]) -> None:
    result = fuse(_random_stack(2), "twostream", weights=checkpoints["twostream_arch_dict"], device="cpu")
    reference = fuse(_random_stack(2), "twostream", weights=checkpoints["twostream"], device="cpu")
    np.testing.assert_array_equal(result.maps["alpha"].data, reference.maps["alpha"].data)


def test_wrong_checkpoints_are_refused(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    with pytest.raises(WeightsError, match="not mfifgan"):
        fuse(_random_stack(2), "mfifgan", weights=checkpoints["ufa"], device="cpu")
    junk = tmp_path / "junk.pt"
    torch.save({"state_dict": {"something.weight": torch.zeros(3)}}, junk)
    with pytest.raises(WeightsError, match="does not fit"):
        fuse(_random_stack(2), "twostream", weights=junk, device="cpu")
