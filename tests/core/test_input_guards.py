"""The core side of the bad-input guards (issue 13): the pixel limit as the window meets it,
float TIFFs of levels, NaN weights, metrics of constant images, and the checks' own parsing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from focusstudio.core.errors import InputError, ParameterError, WeightsError
from focusstudio.core.io import load_stack, probe_image, read_image
from focusstudio.core.io.guards import DEFAULT_MAX_PIXELS, max_pixels, parse_pixel_count
from focusstudio.core.methods.checkpoint import check_finite_state
from focusstudio.core.metrics import compute_metrics
from tests import hostile_files as hostile


def test_the_environment_sets_the_window_s_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window reads frames through probe_image (gui.jobs.load_files): a 30000×30000 TIFF of a
    few hundred bytes is refused from its header, and FOCUSSTUDIO_MAX_PIXELS moves the limit."""
    bomb = hostile.bomb_tiff(tmp_path / "big.tif", side=30000)
    monkeypatch.delenv("FOCUSSTUDIO_MAX_PIXELS", raising=False)
    with pytest.raises(InputError, match=r"30000x30000 pixels \(900 MP\), over the 250 MP limit.*FOCUSSTUDIO_MAX"):
        probe_image(bomb)
    monkeypatch.setenv("FOCUSSTUDIO_MAX_PIXELS", "1G")
    assert max_pixels() == 10**9
    assert probe_image(bomb)[0].shape == (30000, 30000)  # headers only: nothing allocated


def test_the_window_lists_a_bomb_as_a_problem_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("PySide6")
    from focusstudio.core.progress import CancelToken, run_to_completion
    from focusstudio.gui.jobs import load_files

    monkeypatch.delenv("FOCUSSTUDIO_MAX_PIXELS", raising=False)
    bomb = hostile.bomb_tiff(tmp_path / "big.tif", side=30000)
    good = [hostile.write_tiff(tmp_path / f"{i}.tif") for i in range(2)]
    outcome = run_to_completion(load_files([str(bomb), *map(str, good)], CancelToken()))
    assert outcome.stack is not None and len(outcome.stack) == 2
    assert [problem.path for problem in outcome.problems] == [str(bomb)]
    assert "FOCUSSTUDIO_MAX_PIXELS" in outcome.problems[0].message


@pytest.mark.parametrize(
    ("text", "pixels"), [("250M", 250_000_000), ("1.5g", 1_500_000_000), ("400MP", 400_000_000), ("5000", 5000)]
)
def test_pixel_counts_parse(text: str, pixels: int) -> None:
    assert parse_pixel_count(text) == pixels


@pytest.mark.parametrize("text", ["inf", "nan", "1e400", "0", "-3", "many", ""])
def test_bad_pixel_counts_are_parameter_errors(text: str) -> None:
    with pytest.raises(ParameterError):
        parse_pixel_count(text)


def test_a_144_megapixel_header_passes_without_pillow_s_warning(tmp_path: Path) -> None:
    assert DEFAULT_MAX_PIXELS > 144_000_000
    big = hostile.jpeg_declaring(tmp_path / "big.jpg", 12000, 12000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe_image(big)[0].shape == (12000, 12000)


def test_float_levels_scale_per_file_and_per_stack(tmp_path: Path) -> None:
    eight = hostile.float_levels_tiff(tmp_path / "8.tif", seed=1)
    sixteen = hostile.float_levels_tiff(tmp_path / "16.tif", seed=2, peak=65535.0)
    np.testing.assert_allclose(read_image(eight) * 255.0, tifffile.imread(eight), atol=1e-3)
    np.testing.assert_allclose(read_image(sixteen) * 65535.0, tifffile.imread(sixteen), rtol=1e-6, atol=0.02)
    copy = hostile.float_levels_tiff(tmp_path / "8b.tif", seed=3)
    stack = load_stack([eight, copy])
    assert any("divided by 255" in note for note in stack.notes)
    assert 0.2 < float(stack.load(0).mean()) < 0.8
    unit = tmp_path / "unit.tif"
    tifffile.imwrite(unit, tifffile.imread(eight) / 255.0, photometric="rgb")
    assert not any("divided" in note for note in load_stack([unit, unit]).notes)


def test_non_finite_weights_are_named() -> None:
    state = {"a.weight": torch.zeros(2), "b.weight": torch.tensor([1.0, float("inf")]), "steps": torch.tensor(3)}
    with pytest.raises(WeightsError, match=r"w\.pt: holds NaN or infinite values \(in b\.weight\)"):
        check_finite_state(state, "w.pt")
    check_finite_state({"a.weight": torch.ones(3)}, "w.pt")


def test_nmi_of_constant_images_is_nan_and_sizes_name_the_files() -> None:
    flat = np.full((32, 32), 0.5, np.float32)
    values = compute_metrics(flat, [flat, flat], metrics=["NMI", "MI"])
    assert np.isnan(values["NMI"]) and values["MI"] == 0.0
    with pytest.raises(InputError, match=r"^c\.png: is 16×16 pixels but f\.png is 32×32"):
        compute_metrics(flat, [flat, flat[:16, :16]], metrics=["MI"], labels=("f.png", ["b.png", "c.png"], None))


# ----------------------------------------------------------------- one budget policy (part 4)
def test_run_budget_refuses_a_limit_below_the_floor_and_raises_the_automatic_one() -> None:
    from focusstudio.core.tiling import MINIMUM_OPERATION_BUDGET, run_budget

    mib = 1024**2
    with pytest.raises(ParameterError, match=r"--memory-limit 256 MiB is too small for sf .*--memory-limit 640M"):
        run_budget(256 * mib, "cpu", 500 * mib, "sf on 2 frames of 2000×2000")
    budget, working, note = run_budget(1024 * mib, "cpu", 500 * mib, "x")
    assert (budget, working, note) == (1024 * mib, 524 * mib, None)  # tiles get what the floor leaves
    budget, working, note = run_budget(None, "cpu", 64 * 1024 * mib, "sf on 2 frames of 30000×30000")
    assert budget == 64 * 1024 * mib + MINIMUM_OPERATION_BUDGET and working == MINIMUM_OPERATION_BUDGET
    assert note is not None and note.startswith("memory budget raised from")
    assert run_budget(300 * mib, "cpu", 0, "unmeasured")[:2] == (300 * mib, 300 * mib)
    # Small stacks: a floor under the minimum tile budget is not enforced (tiny budgets force streaming).
    assert run_budget(4096, "cpu", 100 * mib, "gacn on 3 frames of 40×40") == (4096, 4096, None)


def test_every_run_gets_the_budget_of_one_policy(
    make_focus_stack, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """The deep methods used a fixed 2 GiB and the window no limit: now the pipeline resolves one
    budget (the user's, else half the free memory) and hands every method a concrete number."""
    from focusstudio.core import tiling
    from focusstudio.core.methods.base import RunContext
    from focusstudio.core.pipeline import fallback_attempts, memory_budget
    from focusstudio.core.tiling import tile_edge
    from focusstudio.core.types import FrameInfo, Stack

    monkeypatch.setattr(tiling, "available_ram", lambda: 1024**3)  # 1 GiB free: 512 MiB budget
    stack = Stack.from_arrays(make_focus_stack(2, size=64, colour=True).frames)
    assert memory_budget(stack, "sesf", None, "cpu") == (512 * 1024**2, 512 * 1024**2, None)
    # Headers of a 2-frame 1500² stack (no pixels needed): sesf's floor is taken off the tiles.
    large = Stack([FrameInfo(f"{i}.png", 1500, 1500, 3, "uint8") for i in range(2)], lambda info: None)
    budget, working, note = memory_budget(large, "sesf", None, "cpu")
    assert note is None and budget == 512 * 1024**2 and working < budget - 128 * 1024**2
    assert RunContext(memory_limit=None).resolved_memory_limit() == 512 * 1024**2
    assert fallback_attempts("cpu", None, None)[0] == ("cpu", 512 * 1024**2, None)
    assert tile_edge(1000.0, 0) == tile_edge(1000.0, 0, memory_limit=512 * 1024**2)  # not 2 GiB
