"""Batch fusion on this machine: stack discovery, failures that do not stop the batch, skip of
complete outputs, resume after an interruption, the output policy, saved alignments, workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.cli import main
from focusstudio.core.batch import BatchSettings, StackDone, discover_stacks, run_batch
from focusstudio.core.batch.runner import run_stack_blocking
from focusstudio.core.batch.sources import StackSpec
from focusstudio.core.errors import InputError
from focusstudio.core.progress import run_to_completion
from focusstudio.core.sidecar import read_sidecar, sidecar_path
from tests.conftest import build_focus_stack

BROKEN = "s3"


def write_stacks(root: Path, count: int = 6, size: int = 48, frames: int = 3, broken: str | None = BROKEN) -> Path:
    """``count`` small stack folders s0, s1, ...; the ``broken`` one has a damaged frame."""
    for number in range(count):
        folder = root / f"s{number}"
        folder.mkdir(parents=True)
        stack = build_focus_stack(frames, size=size, seed=number, dtype="uint8")
        for index, frame in enumerate(stack.frames, start=1):
            cv2.imwrite(str(folder / f"{index}.png"), frame)
    if broken is not None:
        (root / broken / "2.png").write_bytes(b"not a png")
    return root


def settings_for(out: Path, **changes: object) -> BatchSettings:
    return BatchSettings(out, align=False, **changes)  # type: ignore[arg-type]


def outputs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.tif"))}


def test_six_stacks_one_broken_gives_five_results_and_one_reported_failure(tmp_path: Path) -> None:
    root = write_stacks(tmp_path / "root")
    out = tmp_path / "out"
    report = run_to_completion(run_batch(discover_stacks(root), settings_for(out), root=str(root)))
    assert [o.status for o in report.outcomes] == ["done", "done", "done", "failed", "done", "done"]
    failure = report.failed[0]
    assert failure.name == BROKEN and "2.png" in failure.reason and "\n" not in failure.reason
    assert sorted(outputs(out)) == [f"s{n}_sf.tif" for n in (0, 1, 2, 4, 5)]
    for name in outputs(out):
        sidecar = read_sidecar(sidecar_path(out / name))
        assert sidecar is not None and sidecar["batch"]["status"] == "done"
        assert sidecar["command"][:2] == ["focusstudio", "fuse"]
    saved = json.loads((out / "batch-report.json").read_text())
    assert (saved["done"], saved["failed"]) == (5, 1)
    assert saved["stacks"][0]["frames"] == 3 and saved["stacks"][0]["peak_mib"] > 0
    rows = (out / "batch-report.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[4].startswith(f"{BROKEN},failed,")


def test_a_rerun_does_nothing_and_a_changed_input_is_refused_without_force(tmp_path: Path) -> None:
    root = write_stacks(tmp_path / "root", count=3, broken=None)
    out = tmp_path / "out"
    specs = discover_stacks(root)
    run_to_completion(run_batch(specs, settings_for(out)))
    before = {path.name: path.stat().st_mtime_ns for path in out.iterdir() if path.suffix in (".tif", ".json")
              and not path.name.startswith("batch-report")}
    again = run_to_completion(run_batch(specs, settings_for(out)))
    assert [o.status for o in again.outcomes] == ["skipped"] * 3
    after = {name: (out / name).stat().st_mtime_ns for name in before}
    assert after == before
    # A re-acquired input makes the result out of date: refused unless --force.
    frame = root / "s1" / "1.png"
    cv2.imwrite(str(frame), 255 - cv2.imread(str(frame)))
    changed = run_to_completion(run_batch(specs, settings_for(out)))
    assert [o.status for o in changed.outcomes] == ["skipped", "failed", "skipped"]
    assert "--force" in changed.outcomes[1].reason
    forced = run_to_completion(run_batch(specs, settings_for(out, force=True)))
    assert [o.status for o in forced.outcomes] == ["done"] * 3


def test_an_interrupted_run_then_a_rerun_completes_with_the_same_outputs(tmp_path: Path) -> None:
    root = write_stacks(tmp_path / "root", count=5, broken=None)
    specs = discover_stacks(root)
    reference = tmp_path / "reference"
    run_to_completion(run_batch(specs, settings_for(reference)))

    out = tmp_path / "out"
    steps = run_batch(specs, settings_for(out))
    finished = 0
    with pytest.raises(KeyboardInterrupt):
        for event in steps:
            finished += isinstance(event, StackDone)
            if finished == 2 and event.stage == "saving":  # Ctrl-C while the third stack is saving
                steps.throw(KeyboardInterrupt)
    assert sorted(outputs(out)) == ["s0_sf.tif", "s1_sf.tif"]
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no temporary left behind
    partial = json.loads((out / "batch-report.json").read_text())
    assert [stack["status"] for stack in partial["stacks"]] == ["done", "done"]

    # A crash between the image and its finished sidecar: the batch knows the image is its own.
    data = read_sidecar(sidecar_path(out / "s1_sf.tif"))
    assert data is not None
    data["batch"]["status"] = "writing"
    sidecar_path(out / "s1_sf.tif").write_text(json.dumps(data))

    rerun = run_to_completion(run_batch(specs, settings_for(out)))
    assert [o.status for o in rerun.outcomes] == ["skipped", "done", "done", "done", "done"]
    assert outputs(out) == outputs(reference)


def test_an_output_not_written_by_a_batch_is_never_replaced_without_force(tmp_path: Path) -> None:
    root = write_stacks(tmp_path / "root", count=2, broken=None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "s0_sf.tif").write_bytes(b"someone else's")
    report = run_to_completion(run_batch(discover_stacks(root), settings_for(out)))
    assert [o.status for o in report.outcomes] == ["failed", "done"]
    assert (out / "s0_sf.tif").read_bytes() == b"someone else's"
    assert "not written by a batch" in report.outcomes[0].reason


def test_template_colliding_names_are_refused_before_any_work(tmp_path: Path) -> None:
    root = write_stacks(tmp_path / "root", count=2, broken=None)
    with pytest.raises(InputError, match="both be written"):
        run_to_completion(run_batch(discover_stacks(root), settings_for(tmp_path / "out", template="{method}.png")))
    assert not (tmp_path / "out").exists()


def test_manifest_and_pattern_discovery(tmp_path: Path) -> None:
    write_stacks(tmp_path / "root", count=2, broken=None)
    manifest = tmp_path / "stacks.csv"
    manifest.write_text("stack,inputs,method,sf_radius,output\n"
                        "first,root/s0,,3,\n"
                        "second,root/s1/1.png;root/s1/2.png,,,second.png\n")
    specs = discover_stacks(manifest)
    assert [s.name for s in specs] == ["first", "second"]
    assert specs[0].inputs == (tmp_path / "root" / "s0",) and specs[0].params == {"sf_radius": "3"}
    assert len(specs[1].inputs) == 2 and specs[1].output == "second.png"
    report = run_to_completion(run_batch(specs, settings_for(tmp_path / "out")))
    assert [o.status for o in report.outcomes] == ["done", "done"]
    sidecar = read_sidecar(sidecar_path(tmp_path / "out" / "first_sf.tif"))
    assert sidecar is not None and sidecar["params"]["sf_radius"] == 3
    assert (tmp_path / "out" / "second.png").is_file()

    (tmp_path / "stacks.json").write_text(json.dumps([{"name": "j", "inputs": ["root/s1"], "set": {"sf_radius": 2}}]))
    (json_spec,) = discover_stacks(tmp_path / "stacks.json")
    assert json_spec.params == {"sf_radius": 2}

    flat = tmp_path / "flat"
    flat.mkdir()
    for position in (1, 2):
        for plane in (10, 2, 1):  # natural order of the plane field, not of the text
            cv2.imwrite(str(flat / f"pos{position}_z{plane}.png"), np.full((8, 8), plane, np.uint8))
    (flat / "notes.txt").write_text("ignored")
    grouped = discover_stacks(str(flat / "pos{P}_z{Z}.png"))
    assert [s.name for s in grouped] == ["pos1", "pos2"]
    assert [p.name for p in grouped[0].inputs] == ["pos1_z1.png", "pos1_z2.png", "pos1_z10.png"]
    with pytest.raises(InputError, match="plane field"):
        discover_stacks(str(flat / "pos{P}.png"))


def test_a_saved_alignment_is_reused_for_every_stack(tmp_path: Path) -> None:
    from focusstudio.core.align import align, apply_alignment, load_alignment, save_alignment
    from focusstudio.core.io import load_stack
    from focusstudio.core.pipeline import fuse

    root = write_stacks(tmp_path / "root", count=2, size=96, broken=None)
    for folder in ("s0", "s1"):  # the rig's last frame is shifted by 2 px in every stack
        path = root / folder / "3.png"
        cv2.imwrite(str(path), np.roll(cv2.imread(str(path)), 2, axis=1))
    _, alignment = align(load_stack(root / "s0"))
    saved = save_alignment(tmp_path / "rig.json", alignment)
    report = run_to_completion(run_batch(discover_stacks(root), settings_for(tmp_path / "out", alignment_file=saved)))
    assert [o.status for o in report.outcomes] == ["done", "done"]
    assert "from rig.json" in report.outcomes[1].alignment
    expected = fuse(apply_alignment(load_stack(root / "s1"), load_alignment(saved)), "sf").as_dtype()
    written = cv2.imread(str(tmp_path / "out" / "s1_sf.tif"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written, expected)
    # A registration of another frame count fails that stack only, with one line.
    extra = StackSpec("two", (root / "s0" / "1.png", root / "s0" / "2.png"))
    outcome = run_stack_blocking(extra, settings_for(tmp_path / "out", alignment_file=saved))
    assert outcome.status == "failed" and "describes 3 frames" in outcome.reason


def test_cli_batch_exit_codes_and_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_stacks(tmp_path / "root", count=4)
    single = tmp_path / "single"
    assert main(["batch", str(root), "-o", str(single), "--no-align", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "3 fused" in captured.out and f"failed: {BROKEN}:" in captured.err
    parallel = tmp_path / "parallel"
    assert main(["batch", str(root), "-o", str(parallel), "--no-align", "--workers", "2", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["done"], report["failed"]) == (3, 1)
    assert outputs(parallel) == outputs(single)
    # A parallel re-run decides the skips itself: only the failed stack goes to a worker again.
    assert main(["batch", str(root), "-o", str(parallel), "--no-align", "--workers", "2", "--json"]) == 1
    rerun = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in rerun["stacks"]] == ["skipped", "skipped", "skipped", "failed"]
    assert {s["worker"] for s in rerun["stacks"][:3]} == {f"pid {os.getpid()}"}
    assert rerun["stacks"][3]["worker"] != f"pid {os.getpid()}"
    # {index} is the stack's position in the whole batch, whichever runner fused it.
    named = tmp_path / "named"
    assert main(["batch", str(root), "-o", str(named), "--no-align", "--workers", "2", "--quiet",
                 "--template", "{index}_{stack}.png"]) == 1
    assert sorted(p.name for p in named.glob("*.png")) == ["1_s0.png", "2_s1.png", "3_s2.png"]
    capsys.readouterr()
    # Bad batch-level input: exit 2, one line.
    assert main(["batch", str(tmp_path / "missing"), "-o", str(single)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_an_output_created_by_someone_else_during_the_run_is_never_clobbered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core.io import output_policy

    root = write_stacks(tmp_path / "root", count=1, broken=None)
    out = tmp_path / "out"

    def someone_else_writes(stage: str) -> None:  # between the check and the publication
        if stage == "staged" and not (out / "s0_sf.tif").exists():
            (out / "s0_sf.tif").write_bytes(b"another program's")

    monkeypatch.setattr(output_policy, "fault_hook", someone_else_writes)
    report = run_to_completion(run_batch(discover_stacks(root), settings_for(out)))
    assert report.outcomes[0].status == "failed" and "another program" in report.outcomes[0].reason
    assert (out / "s0_sf.tif").read_bytes() == b"another program's"
    assert sorted(p.name for p in out.iterdir()) == ["batch-report.csv", "batch-report.json", "s0_sf.tif"]
    monkeypatch.setattr(output_policy, "fault_hook", None)
    # A sidecar left without its image (a crash between the two publications) is this batch's own.
    (out / "s0_sf.tif").unlink()
    run_to_completion(run_batch(discover_stacks(root), settings_for(tmp_path / "other")))
    (out / "s0_sf.tif.json").write_bytes((tmp_path / "other" / "s0_sf.tif.json").read_bytes())
    rerun = run_to_completion(run_batch(discover_stacks(root), settings_for(out)))
    assert rerun.outcomes[0].status == "done"
    assert outputs(out) == outputs(tmp_path / "other")
