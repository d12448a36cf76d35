"""The pipeline's alignment stage (estimate, saved registration, cached frames) and the CLI's
alignment flags generated from ALIGN_PARAMS (parsed, validated and written back by the sidecar)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.cli import build_parser
from focusstudio.core.align import (
    ALIGN_FLAGS,
    ALIGN_PARAMS,
    AlignOptions,
    AlignRequest,
    align_arguments_for,
    align_frames,
    align_settings_from_args,
    align_settings_from_options,
    apply_alignment,
    estimate_alignment,
    save_alignment,
)
from focusstudio.core.errors import InputError, ParameterError
from focusstudio.core.pipeline import run_fusion, run_pipeline
from focusstudio.core.progress import ProgressEvent, run_to_completion
from focusstudio.core.sidecar import align_arguments
from focusstudio.core.types import Stack

#: Integer shifts (x, y) of the frames against the middle one.
SHIFTS = ((-1, -2), (0, 0), (1, 2))


def _shifted_stack(size: int = 96) -> Stack:
    rng = np.random.default_rng(11)
    base = cv2.GaussianBlur(rng.random((size + 8, size + 8)).astype(np.float32), (0, 0), 1.5)
    frames = [np.ascontiguousarray(base[4 + dy : 4 + dy + size, 4 + dx : 4 + dx + size]) for dx, dy in SHIFTS]
    return Stack.from_arrays(frames)


def _events(generator: object) -> tuple[list[ProgressEvent], object]:
    events: list[ProgressEvent] = []
    result = run_to_completion(generator, events.append)  # type: ignore[arg-type]
    return events, result


def _frames(stack: Stack) -> list[np.ndarray]:
    return [stack.load(index) for index in range(len(stack))]


# ----------------------------------------------------------------------------- the stage
def test_no_request_gives_the_frames_as_they_are() -> None:
    stack = _shifted_stack()
    events, frames = _events(align_frames(stack, None))
    assert events == [] and frames.stack is stack and frames.alignment is None and frames.seconds == 0.0


def test_an_estimating_request_gives_the_registration_estimate_alignment_finds() -> None:
    stack = _shifted_stack()
    settings = {"model": "translation", "crop": False}
    events, frames = _events(align_frames(stack, AlignRequest(settings)))
    direct = run_to_completion(estimate_alignment(stack, AlignOptions.from_params(settings)))
    assert events and all(event.stage == "align" for event in events)
    for found, expected in zip(frames.alignment.frames, direct.frames, strict=True):
        np.testing.assert_array_equal(found.matrix, expected.matrix)  # same code, same inputs
    # The shifts are found (ECC's sub-pixel answer, within 0.05 px of the integer shifts).
    shifts = [frame.matrix[:2, 2] for frame in frames.alignment.frames]
    np.testing.assert_allclose(shifts, [(dx, dy) for dx, dy in SHIFTS], atol=0.05)
    assert frames.stack.valid_mask is not None  # crop=False keeps the size with a validity mask
    assert frames.stack.shape == stack.shape and frames.seconds > 0.0


def test_a_saved_registration_is_applied_without_estimating(tmp_path: Path) -> None:
    stack = _shifted_stack()
    estimated = run_to_completion(align_frames(stack, AlignRequest({"model": "translation"})))
    path = save_alignment(tmp_path / "rig.json", estimated.alignment)
    request = AlignRequest.from_file(path, {"crop": True})
    assert not request.estimates
    events, frames = _events(align_frames(stack, request))
    assert events == []  # nothing registered
    expected = apply_alignment(stack, estimated.alignment, crop=True)
    assert frames.stack.shape == expected.shape
    for got, want in zip(_frames(frames.stack), _frames(expected), strict=True):
        np.testing.assert_array_equal(got, want)


def test_cached_frames_are_used_as_they_are() -> None:
    stack = _shifted_stack()
    first = run_to_completion(align_frames(stack, AlignRequest({})))
    request = AlignRequest({}, saved=first.alignment, aligned=first.stack)
    events, again = _events(align_frames(stack, request))
    assert events == [] and again.stack is first.stack and again.alignment is first.alignment


def test_a_file_without_a_registration_is_one_input_error(tmp_path: Path) -> None:
    path = tmp_path / "not-an-alignment.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(InputError, match="holds no alignment"):
        AlignRequest.from_file(path)


# ----------------------------------------------------------------------------- run_pipeline
def test_the_pipeline_aligns_then_fuses_the_aligned_frames() -> None:
    stack = _shifted_stack()
    events, run = _events(run_pipeline(stack, "sf", align=AlignRequest({"model": "translation"})))
    aligned = run_to_completion(align_frames(stack, AlignRequest({"model": "translation"})))
    alone = run_to_completion(run_fusion(aligned.stack, "sf"))
    np.testing.assert_array_equal(run.result.image, alone.image)  # the same frames, the same fusion
    assert run.stack.shape == aligned.stack.shape and run.alignment is not None and run.align_seconds > 0.0
    # The alignment takes the first 30 % of the progress, the fusion the rest, in order.
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions)
    align_fractions = [event.fraction for event in events if event.stage == "align"]
    assert align_fractions and max(align_fractions) <= 0.3 + 1e-12
    assert min(e.fraction for e in events if e.stage != "align") >= 0.3 - 1e-12


def test_without_a_registration_to_make_the_fusion_has_the_whole_progress() -> None:
    stack = _shifted_stack()
    events, run = _events(run_pipeline(stack, "sf"))
    assert run.alignment is None and run.stack is stack and run.align_seconds == 0.0
    assert all(event.stage != "align" for event in events) and events[0].fraction < 0.3


def test_align_share_none_lets_each_stage_report_over_the_whole_range() -> None:
    events, _ = _events(run_pipeline(_shifted_stack(), "sf", align=AlignRequest({}), align_share=None))
    assert max(event.fraction for event in events if event.stage == "align") == 1.0
    assert min(event.fraction for event in events if event.stage != "align") < 0.3


# ----------------------------------------------------------------------------- generated flags
def _fuse_args(*extra: str) -> object:
    return build_parser().parse_args(["fuse", "a.png", "b.png", "-o", "out.png", *extra])


def test_the_dedicated_flags_keep_their_names_and_take_their_choices_from_the_declarations() -> None:
    assert set(ALIGN_FLAGS.values()) == {"--reference", "--align-model", "--crop"}
    args = _fuse_args("--reference", "0", "--align-model", "affine", "--no-crop")
    assert align_settings_from_args(args) == {"reference": 0, "model": "affine", "crop": False}
    assert align_settings_from_args(_fuse_args()) == {}  # nothing given: every default stays
    with pytest.raises(SystemExit):  # argparse refuses a model the declaration does not list
        _fuse_args("--align-model", "perspective")
    with pytest.raises(ParameterError, match="reference"):  # validated by the declaration
        align_settings_from_args(_fuse_args("--reference", "-5"))


def test_every_setting_goes_through_align_set_and_a_dedicated_flag_wins() -> None:
    args = _fuse_args("--align-set", "photometric=true", "--align-set", "model=homography",
                      "--align-model", "translation")
    assert align_settings_from_args(args) == {"photometric": True, "model": "translation"}
    for spec in ALIGN_PARAMS:
        text = spec.choices[-1] if spec.kind == "choice" else "true" if spec.kind == "bool" else str(spec.default)
        parsed = align_settings_from_args(_fuse_args("--align-set", f"{spec.name}={text}"))
        assert parsed == {spec.name: spec.parse(text)}


def test_the_sidecar_command_reads_back_to_the_same_settings() -> None:
    settings = {"model": "affine", "reference": 2, "crop": False, "photometric": True, "ecc_epsilon": 3e-6,
                "on_failure": "exclude", "interpolation": "linear"}
    arguments = align_arguments(settings)
    assert arguments[0] == "--align" and "--no-crop" in arguments and "--align-model" in arguments
    args = _fuse_args(*arguments)
    assert ALIGN_PARAMS.resolve(align_settings_from_args(args)) == ALIGN_PARAMS.resolve(settings)
    assert align_arguments_for({}) == [] and align_arguments(None) == ["--no-align"]


def test_the_batch_reads_the_same_flags() -> None:
    args = build_parser().parse_args(["batch", "root", "-o", "out", "--reference", "1", "--crop",
                                      "--align-set", "chain=false"])
    assert align_settings_from_args(args) == {"reference": 1, "crop": True, "chain": False}
    assert align_settings_from_options(["chain=false"], 1, None, True) == align_settings_from_args(args)


# ----------------------------------------------------------------------------- the package
def test_every_exported_name_resolves_to_its_module_and_settings_need_no_opencv() -> None:
    import subprocess
    import sys

    import focusstudio.core.align as package

    assert sorted(package._EXPORTS) == sorted(package.__all__)
    for name, module in package._EXPORTS.items():
        assert getattr(package, name) is getattr(__import__(f"focusstudio.core.align.{module}", fromlist=[name]), name)
    code = ("import sys; from focusstudio.core.align import ALIGN_PARAMS, add_align_arguments; "
            "print('cv2' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
