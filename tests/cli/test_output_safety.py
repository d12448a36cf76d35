"""Issue 13 part 2, through the real command line in subprocesses: no command ever overwrites or
damages a file it was not asked to write, and a refused, failed or killed run leaves nothing new.

Each case was reproduced before the output policy existed (see the issue); here each must end
with exit code 2 and one line naming the file, or, for signals, 128 + the signal number, with
the folder exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import focusstudio

REPO = Path(focusstudio.__file__).resolve().parents[1]

#: Runs the real entry point, optionally stopping the run at one of the output policy's stages
#: (argv: stage, action, cli arguments...). action: a signal name, or "barrier:<dir>" (wait until
#: two runs have staged their outputs, so both publish at the same time).
PROBE = """
import os, signal, sys, time
from pathlib import Path
stage, action, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
def hook(reached):
    if reached != stage:
        return
    if action.startswith("barrier:"):
        folder = Path(action[len("barrier:"):])
        (folder / f"ready-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while len(list(folder.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        os.kill(os.getpid(), getattr(signal, action))
if stage != "none":
    from focusstudio.core.io import output_policy
    output_policy.fault_hook = hook
from focusstudio.cli import main
sys.exit(main(argv))
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def _cli(*args: object, cwd: Path, stage: str = "none", action: str = "",
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, stage, action, *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env or _env(),
    )


def _start(*args: object, cwd: Path, stage: str, action: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, stage, action, *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=_env(),
    )


def _one_line(completed: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == code, completed.stderr
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _frames(folder: Path, names: tuple[str, ...] = ("1.png", "2.png"), size: int = 48) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    sharp = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    paths = []
    for index, name in enumerate(names):
        frame = sharp.copy()
        half = slice(0, size // 2) if index % 2 == 0 else slice(size // 2, size)
        frame[:, half] = blurred[:, half]
        cv2.imwrite(str(folder / name), frame)
        paths.append(folder / name)
    return paths


# ----------------------------------------------------------------------------- fuse
def test_fuse_never_writes_a_map_over_an_input(tmp_path: Path) -> None:
    decision, other = _frames(tmp_path / "r3", ("decision.png", "b.png"))
    before = _snapshot(tmp_path)
    completed = _cli("fuse", decision, other, "-o", tmp_path / "r3" / "out.png", "--maps", tmp_path / "r3",
                     "--force", "--quiet", cwd=tmp_path)
    _one_line(completed, 2, "decision.png", "input")
    assert _snapshot(tmp_path) == before


def test_fuse_refuses_an_output_that_is_also_a_map(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "in")
    completed = _cli("fuse", *frames, "-o", tmp_path / "r3b" / "decision.png", "--maps", tmp_path / "r3b",
                     "--force", "--quiet", cwd=tmp_path)
    _one_line(completed, 2, "decision.png", "twice")
    assert not (tmp_path / "r3b").exists()


def test_fuse_checks_every_map_before_writing_anything(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "in")
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "decision.png").write_bytes(b"an earlier map")
    before = _snapshot(tmp_path)
    completed = _cli("fuse", *frames, "-o", tmp_path / "fused.png", "--maps", tmp_path / "maps", "--quiet",
                     cwd=tmp_path)
    _one_line(completed, 2, "decision.png", "already exists", "--force")
    assert _snapshot(tmp_path) == before  # before: the fused image was written, then the run failed


@pytest.mark.parametrize("alias", ["hard", "symlink", "spelling"])
def test_fuse_never_overwrites_an_input_through_another_name(tmp_path: Path, alias: str) -> None:
    frames = _frames(tmp_path / "in")
    target = tmp_path / "alias.png"
    if alias == "hard":
        os.link(frames[0], target)
    elif alias == "symlink":
        os.symlink(frames[0], target)
    else:
        target = tmp_path / "in" / "." / ".." / "in" / "1.png"
    before = _snapshot(tmp_path)
    completed = _cli("fuse", tmp_path / "in", "-o", target, "--force", "--quiet", cwd=tmp_path)
    _one_line(completed, 2, "input")
    assert _snapshot(tmp_path) == before


def test_two_runs_with_the_same_output_exactly_one_wins(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "in")
    (tmp_path / "sync").mkdir()
    out = tmp_path / "same.png"
    runs = [_start("fuse", *frames, "-o", out, "--quiet", cwd=tmp_path, stage="staged",
                   action=f"barrier:{tmp_path / 'sync'}") for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read() if run.stderr else "") for run in runs]
    for run in runs:
        for stream in (run.stdout, run.stderr):
            if stream is not None:
                stream.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2).strip().splitlines()
    assert len(loser) == 1 and "same.png" in loser[0] and "nothing was replaced" in loser[0]
    assert cv2.imread(str(out)) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "same.png", "sync"]


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_while_writing_leaves_nothing(tmp_path: Path, name: str) -> None:
    frames = _frames(tmp_path / "in")
    before = _snapshot(tmp_path)
    completed = _cli("fuse", *frames, "-o", tmp_path / "out.png", "--maps", tmp_path / "maps", "--quiet",
                     cwd=tmp_path, stage="staged", action=name)
    _one_line(completed, 128 + getattr(signal, name), name)
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no .part file, no maps folder


def test_a_signal_while_publishing_restores_the_replaced_files(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "in")
    assert _cli("fuse", *frames, "-o", tmp_path / "out.png", "--maps", tmp_path / "maps", "--quiet",
                cwd=tmp_path).returncode == 0
    for path in [tmp_path / "out.png", *(tmp_path / "maps").iterdir()]:
        path.write_bytes(b"previous " + path.name.encode())
    before = _snapshot(tmp_path)
    completed = _cli("fuse", *frames, "-o", tmp_path / "out.png", "--maps", tmp_path / "maps", "--quiet",
                     "--force", cwd=tmp_path, stage="published", action="SIGTERM")
    _one_line(completed, 128 + signal.SIGTERM, "SIGTERM")
    assert _snapshot(tmp_path) == before
    assert not list(tmp_path.rglob("*.part"))


# ----------------------------------------------------------------------------- eval
def _dataset(root: Path) -> Path:
    _frames(root / "s1")
    return root


def test_eval_never_writes_its_csv_over_a_dataset_image(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    before = _snapshot(tmp_path)
    completed = _cli("eval", dataset, "--csv", dataset / "s1" / "1.png", "--metrics", "SF", cwd=tmp_path)
    _one_line(completed, 2, "1.png", "input")
    assert _snapshot(tmp_path) == before


def test_eval_replaces_a_csv_or_saved_result_only_with_force(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "ds")
    report = tmp_path / "report.csv"
    report.write_text("an older report\n")
    completed = _cli("eval", dataset, "--csv", report, "--save-dir", tmp_path / "saved", "--metrics", "SF",
                     cwd=tmp_path)
    _one_line(completed, 2, "report.csv", "already exists", "--force")
    assert report.read_text() == "an older report\n" and not (tmp_path / "saved").exists()
    assert _cli("eval", dataset, "--csv", report, "--save-dir", tmp_path / "saved", "--metrics", "SF",
                "--force", cwd=tmp_path).returncode == 0
    assert report.read_text().startswith("scene,frames,seconds,SF")
    assert (tmp_path / "saved" / "s1.png").is_file()
    completed = _cli("eval", dataset, "--save-dir", tmp_path / "saved", "--metrics", "SF", cwd=tmp_path)
    _one_line(completed, 2, "s1.png", "already exists")


# ----------------------------------------------------------------------------- batch
def _stacks(root: Path) -> Path:
    for name in ("s0", "s1"):
        _frames(root / name)
    return root


@pytest.mark.parametrize(("output", "template", "words"), [
    ("root", "{stack}/1.png", ("s0/1.png", "file name")),  # would be each stack's own frame 1
    ("root/s0", "{index}.png", ("1.png", "input")),  # stack 1's result over its own frame 1.png
    ("root/s1", "{index}.png", ("1.png", "input")),  # stack 1's result over stack 2's frame
])
def test_batch_never_writes_a_result_over_a_stack_frame(tmp_path: Path, output: str, template: str,
                                                        words: tuple[str, ...]) -> None:
    root = _stacks(tmp_path / "root")
    before = _snapshot(tmp_path)
    completed = _cli("batch", root, "-o", tmp_path / output, "--template", template, "--no-align", "--force",
                     "--quiet", cwd=tmp_path)
    _one_line(completed, 2, *words)
    assert _snapshot(tmp_path) == before  # refused before work: no result, no sidecar, no report


def test_batch_replaces_a_report_it_did_not_write_only_with_force(tmp_path: Path) -> None:
    root = _stacks(tmp_path / "root")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "batch-report.csv").write_text("my own table\n")
    before = _snapshot(tmp_path)
    completed = _cli("batch", root, "-o", tmp_path / "out", "--no-align", "--quiet", cwd=tmp_path)
    _one_line(completed, 2, "batch-report.csv", "not a batch report", "--force")
    assert _snapshot(tmp_path) == before
    assert _cli("batch", root, "-o", tmp_path / "out", "--no-align", "--quiet", "--force",
                cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "batch-report.csv").read_text().startswith("stack,status,")
    # Its own report is replaced by a re-run (which skips both stacks as complete and current).
    rerun = _cli("batch", root, "-o", tmp_path / "out", "--no-align", "--quiet", cwd=tmp_path)
    assert rerun.returncode == 0 and "2 skipped" in rerun.stdout, rerun.stderr


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_while_a_batch_stack_is_writing_leaves_nothing(tmp_path: Path, name: str) -> None:
    root = _stacks(tmp_path / "root")
    before = _snapshot(tmp_path)
    completed = _cli("batch", root, "-o", tmp_path / "out", "--no-align", "--quiet", cwd=tmp_path,
                     stage="staged", action=name)
    assert completed.returncode == 128 + getattr(signal, name), completed.stderr
    assert "Traceback" not in completed.stderr
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]  # no .part, no report, no out folder


# ----------------------------------------------------------------------------- demo
def test_demo_never_overwrites_a_bundled_frame(tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    shutil.copytree(REPO / "resources" / "sample_stack", resources / "sample_stack")
    before = _snapshot(resources)
    completed = _cli("demo", "-o", resources / "sample_stack" / "frame_1.png", "--force", cwd=tmp_path,
                     env=_env(FOCUSSTUDIO_RESOURCES_DIR=str(resources)))
    _one_line(completed, 2, "frame_1.png", "input")
    assert _snapshot(resources) == before


# ----------------------------------------------------------------------------- train
def test_train_never_replaces_a_training_image_and_leaves_no_manifest(tmp_path: Path) -> None:
    data = tmp_path / "d"
    _frames(data, ("frame_1.png", "frame_2.png", "frame_3.png"))
    before = _snapshot(tmp_path)
    completed = _cli("train", "--method", "gacn", "--data", data, "--out", data / "frame_1.png", "--steps", "1",
                     "--batch-size", "1", "--crop", "32", "--val-fraction", "0", "--run-dir", tmp_path / "run",
                     "--force", cwd=tmp_path)
    assert completed.returncode == 2, completed.stderr
    assert "frame_1.png" in completed.stderr and "input" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert _snapshot(tmp_path) == before  # no manifest.json, no manifest.json.lock, no run folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
