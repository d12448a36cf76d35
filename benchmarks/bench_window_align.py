"""The alignment stage's time in the window against the CLI's ``--json`` "align" figure, same stack, one run (issue 19).

    QT_QPA_PLATFORM=offscreen python -m benchmarks.bench_window_align [STACK] [--rounds N]

The CLI runs as a subprocess (``fuse -m sf --align --json``); the window opens the same frames
and fuses with its default alignment settings, and its result's ``seconds`` of the alignment stage
(the timing label's "alignment N s") are reported with the settings each side used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.gui_latency import _wait, make_window

DEFAULT_STACK = Path(__file__).resolve().parents[2] / "shared" / "stacks" / "microscopy_wbc_10"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def cli_align_seconds(folder: Path, scratch: Path) -> float:
    command = [sys.executable, "-m", "focusstudio", "fuse", str(folder), "-m", "sf", "--align",
               "-o", str(scratch / "cli.tif"), "--force", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
    return float(json.loads(done.stdout)["seconds"]["align"])


def window_align(frames: list[Path], scratch: Path) -> dict[str, Any]:
    window = make_window(scratch)
    window.select_method("sf")
    window.set_alignment_mode("on")
    window.open_paths([str(path) for path in frames])
    _wait(window.stackLoaded, 600, window.jobFailed)
    settings = window.alignment_settings(len(frames))
    pressed = time.perf_counter()
    window.fuse()
    _wait(window.resultReady, 1800, window.jobFailed)
    outcome = window.results["A"]
    row = {"align_s": round(outcome.alignment.seconds, 2),  # what the label shows as "alignment N s"
           "worker_s": round(outcome.worker_seconds, 2),
           "fusion_s": round(outcome.result.timings.get("total", 0.0), 2),
           "press_to_result_s": round(time.perf_counter() - pressed, 2), "settings": settings}
    window.close()
    return row


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", nargs="?", type=Path, default=DEFAULT_STACK)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])  # noqa: F841 (the window needs one)
    frames = sorted(p for p in args.stack.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    scratch = Path(tempfile.mkdtemp(prefix="window_align_"))
    for _ in range(args.rounds):  # alternated, so both see the same load
        print(json.dumps({"cli_align_s": round(cli_align_seconds(args.stack, scratch), 2),
                          "window": window_align(frames, scratch)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
