"""SESF-Fuse and GACN with randomly initialised weights on tiny inputs: networks, checkpoint
loading, maps, N-frame strategies, tiling, cancellation and weight lookup."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from focusstudio.core.errors import InputError, MethodUnavailableError, WeightsError
from focusstudio.core.methods.archs import GACNNet, SESFNet
from focusstudio.core.methods.archs.gacn_arch import boundary_guided_filter, per_scale_sum
from focusstudio.core.methods.backends import fast_cpu
from focusstudio.core.methods.backends.fast_cpu import (
    FastEncoder,
    conv2d_activation,
    conv2d_add_activation,
    encoder_channel_scales,
    gradient_energy_difference,
    pixel_means,
    single_output_conv,
    window_sum_sigmoid,
)
from focusstudio.core.methods.backends.gacn_fast import GACNInference
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.checkpoint import load_network
from focusstudio.core.methods.deep_common import channel_box_sum, squared_gradient_energy
from focusstudio.core.methods.engine import plan_network_tiles
from focusstudio.core.methods.gacn import GACN_PARAMS, GACNFuse, apply_bgf, bgf_config
from focusstudio.core.methods.sesf import SESFActivity
from focusstudio.core.ops.consistency import label_opening_majority, verify_binary
from focusstudio.core.pipeline import fuse, run_fusion
from focusstudio.core.progress import Cancelled, CancelToken, run_to_completion
from focusstudio.core.tiling import plan_tiles
from focusstudio.core.types import Stack


def _save(network: torch.nn.Module, path: Path) -> Path:
    torch.save({"state_dict": network.state_dict(), "arch": network.arch_config()}, path)  # type: ignore[operator]
    return path


def _randomise_batchnorm(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random BN statistics/affine so the eval-mode arithmetic is not the identity."""
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)  # type: ignore[union-attr]
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)  # type: ignore[union-attr]
            module.weight.data.copy_(torch.rand(count, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(count, generator=generator) * 0.1)
    return network.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    sesf = _randomise_batchnorm(SESFNet(), 1)
    gacn = _randomise_batchnorm(GACNNet(), 2)
    return {"sesf": _save(sesf, folder / "sesf_random.pt"), "gacn": _save(gacn, folder / "gacn_random.pt")}


@pytest.fixture(autouse=True)
def one_torch_thread() -> object:
    """Tiny tensors: threading overhead only (and a shared CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------- networks
def test_parameter_counts_match_the_released_networks() -> None:
    assert sum(p.numel() for p in SESFNet().parameters()) == 74_803
    assert sum(p.numel() for p in SESFNet().encoder.parameters()) == 14_416
    assert sum(p.numel() for p in GACNNet().parameters()) == 68_820


def test_networks_forward_and_backward() -> None:
    torch.manual_seed(0)
    sesf = SESFNet().train()
    image = torch.rand(2, 1, 24, 20)
    assert sesf.encode(image).shape == (2, 64, 24, 20)
    reconstruction = sesf(image)
    assert reconstruction.shape == (2, 1, 24, 20)
    reconstruction.mean().backward()
    assert sesf.encoder.blocks[0].conv.weight.grad is not None

    gacn = GACNNet().train()
    decision, refined = gacn(torch.rand(2, 1, 24, 20), torch.rand(2, 1, 24, 20))
    assert decision.shape == refined.shape == (2, 1, 24, 20)
    refined.mean().backward()
    grads = [gacn.feature_path.blocks[0].conv.weight.grad, gacn.decision_se[0].conv.weight.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_fast_encoder_is_bitwise_the_module() -> None:
    network = _randomise_batchnorm(SESFNet(), 3)
    image = torch.randn(2, 1, 33, 29)
    fast = FastEncoder(network.encoder)
    with torch.inference_mode():
        # one image at a time, as the methods run it (and as the released code did). Exact on any
        # CPU: the reference mode calls the module's own ops on the same tensors in this process,
        # so the same kernels run (only the batched call may pick another kernel: a tolerance).
        assert torch.equal(fast(image[:1]), network.encode(image[:1]))
        assert torch.allclose(fast(image), network.encode(image), atol=1e-5)


def test_channels_last_encoder_matches_the_module_and_reuses_its_buffer() -> None:
    network = _randomise_batchnorm(SESFNet(), 5)
    image = torch.randn(1, 1, 37, 41)
    fast = FastEncoder(network.encoder, channels_last=True)
    with torch.inference_mode():
        reference = network.encode(image)
        first = fast(image, reuse=True)
        assert first.is_contiguous(memory_format=torch.channels_last)
        # another order of the same sums: equal to float rounding, not bit for bit
        assert torch.allclose(first, reference, atol=1e-5, rtol=1e-4)
        snapshot = first.clone()
        again = fast(image, reuse=True)
        assert again.data_ptr() == first.data_ptr() and torch.equal(again, snapshot)
        assert fast(image).data_ptr() != first.data_ptr()  # without reuse: a fresh buffer
        parts = fast.parts(image)  # the blocks' outputs, each dense, not joined
        assert [part.shape[1] for part in parts] == [16, 16, 16, 16]
        assert all(part.is_contiguous(memory_format=torch.channels_last) for part in parts)
        assert torch.equal(torch.cat(parts, dim=1), snapshot)


def test_gradient_energy_difference_equals_the_reference_order() -> None:
    a = torch.randn(1, 8, 150, 31).contiguous(memory_format=torch.channels_last)
    b = torch.randn(1, 8, 150, 31).contiguous(memory_format=torch.channels_last)
    expected = squared_gradient_energy(a.contiguous(), sum_channels=False, minus=b.contiguous())
    fast = gradient_energy_difference(a, b)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast, expected, atol=1e-5)
    # channel parts (the channels-last encoder's output) give the same numbers, bit for bit: the
    # same element-wise operations on the same values, whatever the layout (no reduction)
    def split(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, :3].contiguous(memory_format=torch.channels_last),
                x[:, 3:].contiguous(memory_format=torch.channels_last)]

    parts_a, parts_b = split(a), split(b)
    assert torch.equal(gradient_energy_difference(parts_a, parts_b), fast)
    single = gradient_energy_difference(parts_a)
    assert torch.allclose(single, squared_gradient_energy(a.contiguous(), sum_channels=False), atol=1e-5)


def test_gacn_inference_matches_the_module(checkpoints: dict[str, Path]) -> None:
    network, _ = load_network("gacn", checkpoints["gacn"])
    assert isinstance(network, GACNNet)
    inference = GACNInference(network, RunContext(), network.sf_radius)
    a, b = torch.rand(1, 1, 40, 36), torch.rand(1, 1, 40, 36)
    with torch.inference_mode():
        activity_a, activity_b = network.activity(network.features(a)), network.activity(network.features(b))
        reference = network.decision_map(activity_a, activity_b)
        fast, per_scale = inference.decision(inference.features(a, None), inference.features(b, None))
        reference_scales = per_scale_sum(activity_a - activity_b)
    assert per_scale is not None and per_scale.shape == (1, 4, 40, 36)
    assert torch.allclose(per_scale, reference_scales, rtol=1e-4, atol=1e-4 * float(reference_scales.abs().max()))
    # sigmoid(1000·x) amplifies rounding only where x ≈ 0
    assert float((fast - reference).abs().mean()) < 1e-3
    assert float(((fast > 0.5) != (reference > 0.5)).float().mean()) < 0.01
    # decision calibration: the reference frame's squared gradients computed once, then reused
    with torch.inference_mode():
        kept = inference.energy(inference.features(a, None))
        calibrated, _ = inference.decision(None, inference.features(b, None), reference_energy=kept)
        again, _ = inference.decision(None, inference.features(b, None), reference_energy=kept)
    assert float((calibrated - fast).abs().mean()) < 1e-3
    assert torch.equal(calibrated, again)  # the kept energy is not modified


#: float32 unit roundoff: one rounding moves a value by at most this fraction of it.
UNIT_ROUNDOFF = 2.0**-24


def conv_rounding_bound(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        padding: tuple[int, int], groups: int = 1, other: torch.Tensor | None = None) -> torch.Tensor:
    """Per output element, the most two kernels can differ on ``conv2d(x, weight) + bias (+ other)``.

    A sum of n products in any order (blocked, vectorised, with or without FMA) is within
    γ_n·Σ|terms| of the exact sum, γ_n = n·u/(1 − n·u) (Higham, Accuracy and Stability of
    Numerical Algorithms, §3.1). oneDNN's kernels and ATen's differ in the order (and between
    CPUs: AVX-512, AVX2 and SSE4.1 kernels block differently), so two of them differ by at most
    2·γ_n·(|W| ⊛ |x| + |b| + |other|): a bound from the arithmetic, not from one CPU's results."""
    terms = weight.shape[1] * weight.shape[2] * weight.shape[3] + (bias is not None) + (other is not None)
    gamma = terms * UNIT_ROUNDOFF / (1.0 - terms * UNIT_ROUNDOFF)
    magnitude = F.conv2d(x.abs(), weight.abs(), None if bias is None else bias.abs(), padding=padding, groups=groups)
    if other is not None:
        magnitude = magnitude + other.abs()
    return 2.0 * gamma * magnitude


#: sigmoid's own evaluation (oneDNN's and ATen's vectorised exp): a few ulps of values ≤ 1.
SIGMOID_EVALUATION = 16 * UNIT_ROUNDOFF


def _within(actual: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor | float) -> bool:
    return bool(((actual - expected).abs() <= bound).all())


def test_single_output_conv_equals_conv2d() -> None:
    x, weight = torch.randn(2, 16, 21, 17), torch.randn(1, 16, 7, 7)
    expected = F.conv2d(x, weight, padding=3)
    bound = conv_rounding_bound(x, weight, None, (3, 3))  # other summation orders (see there)
    assert _within(single_output_conv(x, weight), expected, bound)
    # channels-last input: one 1×7 convolution with 7 outputs, then row shifts
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert _within(single_output_conv(channels_last, weight), expected, bound)
    odd = torch.randn(1, 16, 3, 3)  # a kernel smaller than the 8 outputs oneDNN prefers
    assert _within(single_output_conv(channels_last, odd), F.conv2d(x, odd, padding=1),
                   conv_rounding_bound(x, odd, None, (1, 1)))


def test_fused_convolution_activation_equals_conv2d(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(1, 16, 23, 19).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(8, 16, 3, 3).contiguous(memory_format=torch.channels_last)
    bias = torch.randn(8)
    plain = F.conv2d(x, weight, bias, padding=1)
    # oneDNN's fused kernel and conv2d sum in their own orders (bit-identical on some CPUs, ~1e-5
    # apart on others): equal within the rounding bound. ReLU is 1-Lipschitz, sigmoid ¼-Lipschitz.
    bound = conv_rounding_bound(x, weight, bias, (1, 1))
    fused_relu = conv2d_activation(x, weight, bias, (1, 1), "relu")
    assert _within(fused_relu, plain.relu(), bound)
    fused_sigmoid = conv2d_activation(x, weight, bias, (1, 1), "sigmoid")
    assert _within(fused_sigmoid, torch.sigmoid(plain), bound / 4 + SIGMOID_EVALUATION)
    # a torch build without oneDNN's fused op: conv2d then ReLU, the very arithmetic of ``plain``
    monkeypatch.setattr(fast_cpu, "_fused_conv_available", False)
    assert torch.equal(conv2d_activation(x, weight, bias, (1, 1), "relu"), plain.relu())
    # the running sum of a dense block's per-part convolutions
    other = torch.randn(1, 8, 23, 19).contiguous(memory_format=torch.channels_last)
    no_bias = F.conv2d(x, weight, padding=1)
    sum_bound = conv_rounding_bound(x, weight, None, (1, 1), other=other)
    expected_sum = (no_bias + other).relu()
    monkeypatch.setattr(fast_cpu, "_fused_conv_available", None)
    assert _within(conv2d_add_activation(x, other, weight, (1, 1), "relu"), expected_sum, sum_bound)
    assert _within(conv2d_add_activation(x, other, weight, (1, 1), None), no_bias + other, sum_bound)
    monkeypatch.setattr(fast_cpu, "_fused_conv_available", False)
    assert torch.equal(conv2d_add_activation(x, other, weight, (1, 1), "relu"), expected_sum)
    depthwise = torch.ones(16, 1, 5, 1).contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(fast_cpu, "_fused_conv_available", None)
    depthwise_bound = conv_rounding_bound(x, depthwise, None, (2, 0), groups=16)
    assert _within(conv2d_activation(x, depthwise, None, (2, 0), "sigmoid", groups=16),
                   torch.sigmoid(F.conv2d(x, depthwise, padding=(2, 0), groups=16)),
                   depthwise_bound / 4 + SIGMOID_EVALUATION)


def test_window_sum_sigmoid_channels_last_equals_the_plain_path() -> None:
    energy = torch.randn(1, 32, 40, 27) * 1e-3
    plain, plain_groups = window_sum_sigmoid(energy.clone(), 5, 1000.0, group_width=16)
    fast, fast_groups = window_sum_sigmoid(energy.contiguous(memory_format=torch.channels_last), 5, 1000.0,
                                           group_width=16)
    window = channel_box_sum(energy, 5)
    assert torch.allclose(plain, torch.sigmoid(1000.0 * window), atol=1e-6)
    # the gain inside the window's weights rounds differently: equal where 1000·W is not ≈ 0
    assert float((fast - plain).abs().max()) < 1e-3
    assert plain_groups is not None and fast_groups is not None and fast_groups.shape == (1, 2, 40, 27)
    expected_groups = window.reshape(1, 2, 16, 40, 27).sum(dim=2)
    assert torch.allclose(plain_groups, expected_groups, atol=1e-6)
    assert torch.allclose(fast_groups, expected_groups, atol=1e-6)
    assert window_sum_sigmoid(energy.clone(), 5, 1000.0)[1] is None


@pytest.mark.parametrize("rows", [16 * 37, 16 * 37 + 5, 7])
def test_pixel_means_equal_the_column_means(rows: int) -> None:
    pixels = torch.rand(rows, 16) + 100.0  # an offset that exposes careless float32 summation
    expected = pixels.double().mean(dim=0)
    assert torch.allclose(pixel_means(pixels).double(), expected, rtol=1e-6)


def test_boundary_filter_on_the_cpu_equals_the_module_and_tiles() -> None:
    rng = np.random.default_rng(3)
    grey_a, grey_b = rng.random((70, 90), dtype=np.float32), rng.random((70, 90), dtype=np.float32)
    decision = cv2.GaussianBlur((rng.random((70, 90)) > 0.5).astype(np.float32), (0, 0), 4.0)
    config = bgf_config(GACN_PARAMS.defaults())
    with torch.inference_mode():
        module_out, module_weight = boundary_guided_filter(
            *(torch.from_numpy(x)[None, None] for x in (decision, grey_a, grey_b)), config
        )
    refined, weight = apply_bgf(decision, grey_a, grey_b, config, RunContext())
    assert np.allclose(refined, module_out[0, 0].numpy(), atol=1e-5)
    assert np.allclose(weight, module_weight[0, 0].numpy(), atol=1e-5)
    tiled, _ = apply_bgf(decision, grey_a, grey_b, config, RunContext(tile_size=32))
    assert np.allclose(tiled, refined, atol=1e-6)


def test_receptive_radius() -> None:
    # 4 encoder convs + 1 (difference) + 5 (SF window) + decision path 3 + 4·(1 + 3) + BGF max(4, 2·3)
    assert GACNNet().receptive_radius(include_bgf=False) == 29
    assert GACNNet().receptive_radius() == 35


# ------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_formats_round_trip(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    network, kind = load_network("sesf", checkpoints["sesf"])
    assert kind == "focusstudio" and not network.training
    plain = tmp_path / "plain.pt"
    torch.save(network.state_dict(), plain)
    again, kind = load_network("sesf", plain)
    assert kind == "state_dict"
    for key, value in network.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    encoder_only = tmp_path / "encoder_only.pt"
    torch.save({k: v for k, v in network.state_dict().items() if not k.startswith("decoder.")}, encoder_only)
    assert load_network("sesf", encoder_only)[1] == "state_dict"


def test_bad_checkpoints_are_clear_errors(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not sesf"):
        load_network("sesf", checkpoints["gacn"])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        load_network("gacn", corrupt)
    wrong = tmp_path / "wrong.pt"
    torch.save({"encoder.blocks.0.conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(WeightsError, match="does not fit"):
        load_network("sesf", wrong)
    with pytest.raises(WeightsError, match="not found"):
        load_network("sesf", tmp_path / "missing.pt")


def test_shipped_weights_lookup_and_digest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           checkpoints: dict[str, Path]) -> None:
    monkeypatch.setenv("FOCUSSTUDIO_WEIGHTS_DIR", str(tmp_path))
    method = GACNFuse()
    available, reason = method.availability()
    assert not available and "weights missing: weights/gacn.pt" in reason
    assert method.availability(checkpoints["gacn"]) == (True, "")
    stack = Stack.from_arrays([np.zeros((16, 16), np.float32)] * 2)
    with pytest.raises(MethodUnavailableError, match="weights missing"):
        fuse(stack, "gacn")
    (tmp_path / "gacn.pt").write_bytes(checkpoints["gacn"].read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps({"gacn": {"file": "gacn.pt", "sha256": "0" * 64}}))
    assert method.availability()[0]
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        fuse(stack, "gacn")
    from focusstudio.core.weights import sha256_of

    digest = sha256_of(tmp_path / "gacn.pt")
    (tmp_path / "manifest.json").write_text(json.dumps({"weights": {"gacn": {"sha256": digest}}}))
    assert fuse(stack, "gacn").weights == "gacn.pt (shipped)"


# ------------------------------------------------------------------------------------- methods
def test_sesf_pair_maps_and_rounding(
    make_focus_stack: Callable[..., object], checkpoints: dict[str, Path]
) -> None:
    synthetic = make_focus_stack(2, size=64, colour=True, dtype="uint8")
    result = fuse(synthetic.stack, "sesf", weights=checkpoints["sesf"], device="cpu")
    assert result.image.shape == (64, 64, 3) and result.rounding == "truncate"
    assert {"activity_0", "activity_1", "decision_raw", "decision_post", "weight"} <= set(result.maps)
    raw = result.maps["decision_raw"].data
    strict = result.maps["activity_0"].data > result.maps["activity_1"].data
    assert np.array_equal(raw, strict.astype(np.float32))
    # deep SF of random features still measures detail: the sharp disk of frame 0 wins
    agreement = float(((result.maps["decision_post"].data > 0.5) == (synthetic.labels == 0)).mean())
    assert agreement > 0.8
    assert result.as_dtype().dtype == np.uint8


def test_sesf_post_parameters_reuse_the_analysis(make_focus_stack: Callable[..., object],
                                                  checkpoints: dict[str, Path]) -> None:
    stack = make_focus_stack(2, size=48).stack
    first = fuse(stack, "sesf", weights=checkpoints["sesf"])
    gen = run_fusion(stack, "sesf", {"use_guided_filter": False}, weights=checkpoints["sesf"],
                     analysis=first.analysis)
    second = run_to_completion(gen)
    assert "analyze" not in second.timings
    assert np.array_equal(second.maps["weight"].data, second.maps["decision_post"].data)
    assert not np.array_equal(first.maps["weight"].data, second.maps["weight"].data)


def test_sesf_nway_and_serial(make_focus_stack: Callable[..., object], checkpoints: dict[str, Path]) -> None:
    synthetic = make_focus_stack(4, size=64)
    nway = fuse(synthetic.stack, "sesf", {"strategy": "nway"}, weights=checkpoints["sesf"])
    assert {"index_raw", "index", "activity_3"} <= set(nway.maps)
    index = nway.maps["index"].data
    assert index.dtype == np.int32 and index.min() >= 0 and index.max() <= 3
    raw = nway.maps["index_raw"].data
    activities = np.stack([nway.maps[f"activity_{i}"].data for i in range(4)])
    assert np.array_equal(raw, np.argmax(activities, axis=0))
    assert float((index == synthetic.labels).mean()) > 0.6
    # blend without the classical weight: the same arg-max, composed by pyramid blending
    plain = fuse(synthetic.stack, "sesf", {"classical_power": 0.0}, weights=checkpoints["sesf"])
    assert np.array_equal(plain.maps["index_raw"].data, raw) and "weight" not in plain.maps
    # the default for N > 2 (blend): the arg-max of deep SF × classical focus activity
    blend = fuse(synthetic.stack, "sesf", weights=checkpoints["sesf"])
    from focusstudio.core.methods.strategies import focus_activity
    scores = activities * np.stack([focus_activity(synthetic.stack.load(i)) for i in range(4)])
    agree = blend.maps["index_raw"].data == np.argmax(scores, axis=0)
    assert float(agree.mean()) > 0.999  # float32 products: near-ties may round either way
    assert "weight" not in blend.maps
    assert float((blend.maps["index"].data == synthetic.labels).mean()) > 0.6
    serial = fuse(synthetic.stack, "sesf", {"strategy": "serial"}, weights=checkpoints["sesf"])
    assert serial.image.shape == (64, 64) and "weight" in serial.maps
    # the serial chain depends on post parameters: changing one re-runs it
    gen = run_fusion(synthetic.stack, "sesf", {"strategy": "serial", "use_srr": False},
                     weights=checkpoints["sesf"], analysis=serial.analysis)
    assert run_to_completion(gen).image.shape == (64, 64)


def test_gacn_pair_calibration_and_serial(make_focus_stack: Callable[..., object],
                                          checkpoints: dict[str, Path]) -> None:
    pair = make_focus_stack(2, size=48, colour=True, dtype="uint8").stack
    result = fuse(pair, "gacn", weights=checkpoints["gacn"])
    expected = {"activity_diff_scale1", "activity_diff_scale4", "decision_initial", "boundary", "decision"}
    assert expected <= set(result.maps) and result.rounding == "round"
    decision = result.maps["decision"].data
    np.testing.assert_allclose(result.image[..., 0], decision * pair.load(0)[..., 0]
                               + (1 - decision) * pair.load(1)[..., 0], atol=1e-5)

    stack = make_focus_stack(4, size=48).stack
    calibrated = fuse(stack, "gacn", {"strategy": "calibration"}, weights=checkpoints["gacn"])
    volumes = np.stack([calibrated.maps[f"decision_volume_{j}"].data for j in range(4)])
    index = calibrated.maps["index"].data
    assert np.array_equal(index, np.argmax(volumes, axis=0))  # ties → lowest index, as np.argmax
    frames = np.stack([stack.load(i) for i in range(4)])
    assert np.array_equal(calibrated.image, np.take_along_axis(frames, index[None], 0)[0])
    serial = fuse(stack, "gacn", {"strategy": "serial"}, weights=checkpoints["gacn"])
    assert serial.image.shape == (48, 48) and "decision" in serial.maps
    neighbours = fuse(stack, "gacn", {"strategy": "neighbours"}, weights=checkpoints["gacn"])
    default = fuse(stack, "gacn", weights=checkpoints["gacn"])  # neighbour pairs: the default for N > 2
    assert default.analysis is not None and default.analysis.data["strategy"] == "neighbours"
    np.testing.assert_array_equal(default.image, neighbours.image)


def test_calibration_streams_when_maps_exceed_the_budget(make_focus_stack: Callable[..., object],
                                                        checkpoints: dict[str, Path]) -> None:
    stack = make_focus_stack(3, size=40).stack
    calibration = {"strategy": "calibration"}
    kept = fuse(stack, "gacn", calibration, weights=checkpoints["gacn"])
    streamed = fuse(stack, "gacn", calibration, weights=checkpoints["gacn"], memory_limit=40 * 40 * 4 * 2)
    assert "decision_volume_0" in kept.maps and "decision_volume_0" not in streamed.maps
    assert np.array_equal(kept.maps["index"].data, streamed.maps["index"].data)


# ------------------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("channels_last", [False, True])
def test_tiled_channel_scales_are_the_global_ones(channels_last: bool) -> None:
    network = _randomise_batchnorm(SESFNet(), 4)
    encoder = FastEncoder(network.encoder, channels_last=channels_last)
    image = torch.randn(1, 1, 70, 90)
    with torch.inference_mode():
        tiled = encoder_channel_scales(encoder, image, plan_tiles(70, 90, 32, 0))
        # block by block, the scales the module computes from the whole image
        current, outputs = image, []
        for i, (block, se) in enumerate(zip(network.encoder.blocks, network.encoder.se)):
            normalised = block(current)
            assert torch.allclose(tiled[i], se.scales(normalised), atol=1e-6)
            outputs.append(normalised * tiled[i])
            current = torch.cat(outputs, dim=1)
        assert torch.allclose(encoder(image, tiled), encoder(image), atol=1e-5)


def test_sesf_tiled_equals_untiled(checkpoints: dict[str, Path]) -> None:
    network, _ = load_network("sesf", checkpoints["sesf"])
    assert isinstance(network, SESFNet)
    grey = np.random.default_rng(0).random((75, 98)).astype(np.float32)
    whole = SESFActivity(network, RunContext(), 5)(grey)
    context = RunContext(tile_size=32)
    assert len(plan_network_tiles(75, 98, context, 2048, 10)) > 4
    tiled = SESFActivity(network, context, 5)(grey)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-4 * float(whole.max()))


def test_gacn_tiled_equals_untiled(checkpoints: dict[str, Path]) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((90, 84)).astype(np.float32), rng.random((90, 84)).astype(np.float32)
    stack = Stack.from_arrays([a, b])
    whole = fuse(stack, "gacn", weights=checkpoints["gacn"])
    events: list[str] = []
    tiled = run_to_completion(run_fusion(stack, "gacn", weights=checkpoints["gacn"], tile_size=32),
                              lambda event: events.append(event.stage))
    assert events.count("network") >= 9  # a progress event per tile
    for name in ("decision_initial", "decision"):
        difference = np.abs(whole.maps[name].data - tiled.maps[name].data)
        assert float(difference.mean()) < 1e-4 and float((difference > 1e-2).mean()) < 1e-3
    np.testing.assert_allclose(tiled.image, whole.image, atol=2e-2)


def test_gacn_tiled_calibration_equals_untiled(checkpoints: dict[str, Path]) -> None:
    rng = np.random.default_rng(2)
    frames = [rng.random((70, 66)).astype(np.float32) for _ in range(4)]
    stack = Stack.from_arrays(frames)
    calibration = {"strategy": "calibration"}
    whole = fuse(stack, "gacn", calibration, weights=checkpoints["gacn"])
    events: list[str] = []
    # tile by tile (every grey frame fits the budget), the reference once per tile
    tiled = run_to_completion(run_fusion(stack, "gacn", calibration, weights=checkpoints["gacn"], tile_size=32),
                              lambda event: events.append(event.message))
    assert any(message.startswith("tile 9/") for message in events)
    for j in range(4):
        difference = np.abs(whole.maps[f"decision_volume_{j}"].data - tiled.maps[f"decision_volume_{j}"].data)
        assert float(difference.mean()) < 1e-3
    assert float((whole.maps["index"].data != tiled.maps["index"].data).mean()) < 1e-3


# ------------------------------------------------------------------------------------- cancel
@pytest.mark.parametrize("method", ["sesf", "gacn"])
def test_cancel_stops_the_run(method: str, make_focus_stack: Callable[..., object],
                              checkpoints: dict[str, Path]) -> None:
    stack = make_focus_stack(4, size=32).stack
    token = CancelToken()
    gen = run_fusion(stack, method, cancel=token, weights=checkpoints[method])
    next(gen)  # the first progress event
    token.cancel()
    with pytest.raises(Cancelled):
        for _ in gen:
            pass


# ------------------------------------------------------------------------------------- post
def test_consistency_verification_removes_specks() -> None:
    decision = np.zeros((60, 60), bool)
    decision[10:40, 10:40] = True
    decision[50, 50] = True  # a speck: removed by the opening
    decision[20, 20] = False  # a hole: filled by the closing
    params = {"use_morphology": True, "morphology_radius": 3, "use_srr": True, "area_fraction": 0.01}
    cleaned = verify_binary(decision, params)
    assert not cleaned[50, 50] and cleaned[20, 20] and cleaned[25, 25]
    labels = np.zeros((40, 40), np.int32)
    labels[:, 20:] = 1
    labels[5, 5] = 2
    opened = label_opening_majority(labels, 2)
    assert opened[5, 5] == 0 and np.array_equal(opened[:, 21:], labels[:, 21:])


@pytest.mark.parametrize("method", ["sesf", "gacn"])
def test_frame_of_another_size_is_an_input_error(method: str, checkpoints: dict[str, Path]) -> None:
    frames = [np.zeros((32, 32), np.float32), np.zeros((32, 40), np.float32)]
    stack = Stack.from_arrays(frames, names=["a", "b"])
    with pytest.raises(InputError, match="differs"):
        fuse(stack, method, weights=checkpoints[method])
