"""Responsiveness of the FocusStudio window: GUI-thread stalls while a big stack loads and fuses,
and the latency of live post-processing updates (live tuning and start-up: ``benchmarks.gui_tuning``).

    QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_latency
    QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_latency --preset small --live-size 1024

Stalls: a 10 ms timer on the GUI thread records how late it fires (see
``focusstudio.gui.latency.EventLoopProbe``) from the moment the folder is opened until the fused
result is on screen. Live latency: after a full ``sf`` fusion of a 2-frame colour stack of
``--live-size``² pixels, a post-processing parameter is changed repeatedly; each change is timed
to its first update on screen (a viewport-resolution preview where the window makes one) and to
its full-resolution result, next to the time the full post-processing took in the worker.

Cancel and quit (``--cancel``): on a ~1 MP stack (``--cancel-size``, ``--cancel-frames``; synthetic, with
focus breathing so alignment has work), a run is cancelled at several moments of one stage — the
alignment, an ``sf`` fusion, a deep method (``sesf``) — and the time from Cancel to the worker's
end (the work stopping, not only the display) is recorded. Quit: a child process opens the window,
starts the deep method, closes the window mid-run; the time from ``close()`` to the process's exit.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_latency --cancel

First frame (``--first-frame``): seconds from opening a real stack (``../shared/stacks``
macro_object_6 and microscopy_wbc_10) to its first frame in the main view, next to the seconds
until the stack is open; each run is a fresh process, this tree and ``--before TREE`` (e.g. a
``git worktree`` of main) alternately, with the CPU time of the process.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_latency --first-frame --before /tmp/base

Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.bench_stacks import PRESETS, StackSpec, build_stack


def _wait(signal: Any, timeout_s: float, failed: Any = None) -> list[Any]:
    """Run the event loop until ``signal`` fires; returns its arguments (raises on failure/timeout)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    received: list[Any] = []
    errors: list[str] = []

    def on_signal(*args: Any) -> None:
        received.extend(args)
        loop.quit()

    def on_failed(message: str) -> None:
        errors.append(message)
        loop.quit()

    signal.connect(on_signal)
    if failed is not None:
        failed.connect(on_failed)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(on_signal)
    if failed is not None:
        failed.disconnect(on_failed)
    if errors:
        raise RuntimeError(errors[0])
    return received


class StallWatchdog:
    """A thread that notes where the GUI thread is whenever its probe has not ticked for a while.

    When the GUI thread is busy in our code, the stack names the slow function; when it sits in
    the event loop (``exec``) it was ready but did not get the CPU or the GIL (another thread held it).
    """

    def __init__(self, probe: Any, threshold_s: float = 0.08) -> None:
        import threading

        self.probe = probe
        self.threshold = threshold_s
        self.samples: dict[str, int] = {}
        self.workers: dict[str, int] = {}
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import traceback

        while not self._stop.wait(0.02):
            if time.perf_counter() - self.probe.last_tick < self.threshold:
                continue
            frames = sys._current_frames()
            frame = frames.get(self._main)
            if frame is None:
                continue
            where = " < ".join(
                f"{Path(entry.filename).name}:{entry.name}" for entry in reversed(traceback.extract_stack(frame)[-4:])
            )
            self.samples[where] = self.samples.get(where, 0) + 1
            # What the other threads were doing then (a worker holding the GIL shows up here).
            for ident, other in frames.items():
                if ident in (self._main, self._thread.ident):
                    continue
                top = traceback.extract_stack(other)[-2:]
                key = " < ".join(f"{Path(entry.filename).name}:{entry.name}" for entry in reversed(top))
                self.workers[key] = self.workers.get(key, 0) + 1

    @staticmethod
    def top(samples: dict[str, int], count: int = 5) -> list[str]:
        ranked = sorted(samples.items(), key=lambda item: -item[1])[:count]
        return [f"{hits}× {where}" for where, hits in ranked]


def make_window(folder: Path) -> Any:
    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.settings import AppSettings, PresetStore

    window = MainWindow(AppSettings(folder / "settings.ini"), PresetStore(folder / "presets.json"))
    window.metrics_panel.auto.setChecked(False)  # measure the fusion, not the metrics competing for the CPU
    window.confirm_discard = False  # scripted: closing must not ask about unexported results
    window.show()
    return window


def measure_stalls(frames: list[Path], method: str, scratch: Path) -> dict[str, Any]:
    from focusstudio.gui.latency import EventLoopProbe

    window = make_window(scratch)
    window.select_method(method)
    preload = measure_preload()
    probe = EventLoopProbe(10)
    probe.start()
    watchdog = StallWatchdog(probe)
    watchdog.start()
    started = time.perf_counter()
    window.open_paths([str(path) for path in frames])  # the frames, not the ground truth beside them
    _wait(window.stackLoaded, 600, window.jobFailed)
    loaded = time.perf_counter()
    window.fuse()
    _wait(window.resultReady, 1800, window.jobFailed)
    fused = time.perf_counter()
    _wait(window.resultReady, 0.5)  # let the display settle (repaints, frame decoding)
    probe.stop()
    watchdog.stop()
    stack = window.loaded_stack
    window.close()
    return {
        "stack": f"{len(stack)} frames {stack.shape[1]}x{stack.shape[0]} {stack.dtype}",
        "method": method,
        "open_seconds": round(loaded - started, 2),
        "fuse_seconds": round(fused - loaded, 2),
        "ticks": len(probe.stalls),
        "longest_stall_ms": round(probe.longest_ms, 1),
        "p99_stall_ms": round(probe.percentile_ms(0.99), 1),
        "median_stall_ms": round(probe.percentile_ms(0.5), 2),
        "stalls_over_100ms": sum(stall > 0.1 for stall in probe.stalls),
        "gui_thread_during_stalls": watchdog.top(watchdog.samples),
        "other_threads_during_stalls": watchdog.top(watchdog.workers),
        "startup_preload": preload,
    }


def measure_preload() -> dict[str, Any]:
    """The app starts importing torch in the background once its window shows
    (``focusstudio.gui.preload``); the GUI-thread stalls while that runs, measured separately
    from the fusion (which then finds torch loaded, as it would in the app)."""
    from PySide6.QtWidgets import QApplication

    from focusstudio.gui.latency import EventLoopProbe
    from focusstudio.gui.preload import preload_deep_runtime

    probe = EventLoopProbe(10)
    probe.start()
    started = time.perf_counter()
    thread = preload_deep_runtime()
    while thread is not None and thread.is_alive():
        QApplication.processEvents()  # the event loop, as the app's would run meanwhile
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    probe.stop()
    return {
        "already_loaded": thread is None,
        "seconds": round(seconds, 2),
        "longest_stall_ms": round(probe.longest_ms, 1),
        "stalls_over_100ms": sum(stall > 0.1 for stall in probe.stalls),
    }


def measure_live(size: int, repeats: int, cache: Path, scratch: Path) -> dict[str, Any]:
    """Live updates on a 2-frame colour stack of ``size``² pixels written as PNG files."""
    from benchmarks.gui_tuning import measure_live_on

    frames, _ = build_stack(StackSpec(size, size, 2, "uint8", "png"), cache)
    report = measure_live_on(lambda window: window.open_paths([str(path) for path in frames]), "sf", repeats,
                             scratch)
    report["stack"] = f"2 frames {size}x{size} RGB uint8 ({size * size / 1e6:.2f} MP)"
    return report


#: (label, method, align, the progress stage during which Cancel is pressed)
CANCEL_CASES = (
    ("alignment", "sf", True, "align"),
    ("sf fusion", "sf", False, "analysis"),
    ("sesf (deep)", "sesf", False, "network"),
)


def _process_events_until(condition: Any, timeout_s: float) -> bool:
    from PySide6.QtWidgets import QApplication

    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            return False
        QApplication.processEvents()
        time.sleep(0.001)
    return True


def cancel_once(window: Any, stage: str, delay_s: float) -> dict[str, Any]:
    """Fuse, wait ``delay_s`` into ``stage``, press Cancel; seconds until the worker has ended."""
    seen: list[float] = []

    def on_progress(event: Any) -> None:
        if event.stage == stage and not seen:
            seen.append(time.perf_counter())

    window.fusion_runner.progressed.connect(on_progress)
    started = time.perf_counter()
    window.fuse()
    reached = _process_events_until(lambda: bool(seen) or not window.fusion_runner.busy, 600)
    window.fusion_runner.progressed.disconnect(on_progress)
    if not reached or not seen:
        raise RuntimeError(f"the run never reached the stage {stage!r}")
    _process_events_until(lambda: time.perf_counter() >= seen[0] + delay_s or not window.fusion_runner.busy, 600)
    if not window.fusion_runner.busy:
        return {"finished_before_cancel": True, "run_seconds": round(time.perf_counter() - started, 2)}
    pressed = time.perf_counter()
    window.cancel_fusion()
    hidden = time.perf_counter() - pressed
    if not _process_events_until(lambda: window.fusion_runner.live_workers == 0, 120):
        raise RuntimeError("the cancelled worker did not end within 120 s")
    return {"into_stage_s": round(pressed - seen[0], 2), "ui_ms": round(hidden * 1000, 1),
            "work_stopped_ms": round((time.perf_counter() - pressed) * 1000, 1)}


def measure_cancel(frames: list[Path], repeats: int, scratch: Path) -> dict[str, Any]:
    import subprocess

    window = make_window(scratch)
    window.open_paths([str(path) for path in frames])
    _wait(window.stackLoaded, 600, window.jobFailed)
    stack = window.loaded_stack
    megapixels = stack.shape[0] * stack.shape[1] / 1e6
    report: dict[str, Any] = {
        "stack": f"{len(stack)} frames {stack.shape[1]}x{stack.shape[0]} ({megapixels:.2f} MP)",
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    for label, method, align, stage in CANCEL_CASES:
        window.select_method(method)
        window.set_alignment_mode("on" if align else "off")
        cancel_once(window, stage, 0.05)  # warm-up: imports, weights, caches
        samples = [cancel_once(window, stage, 0.1 + 0.3 * k) for k in range(repeats)]
        stopped = [sample["work_stopped_ms"] for sample in samples if "work_stopped_ms" in sample]
        report[label] = {
            "method": method, "cancelled_during": stage, "samples": samples,
            "median_work_stopped_ms": round(statistics.median(stopped), 1) if stopped else None,
            "max_work_stopped_ms": max(stopped) if stopped else None,
        }
        print(json.dumps({label: report[label]}), flush=True)
    window.close()
    quits = []
    folder = frames[0].parent
    for _ in range(3):
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.gui_latency", "--quit-child", "sesf", str(folder)],
            capture_output=True, text=True, timeout=600,
        )
        ended = time.time()
        lines = [line for line in child.stdout.splitlines() if line.startswith("closing at ")]
        if child.returncode != 0 or not lines:
            raise RuntimeError(f"the quit child failed: {child.stderr.strip()[-500:]}")
        quits.append(round((ended - float(lines[-1].split()[-1])) * 1000, 1))
    report["quit during sesf"] = {"close_to_exit_ms": quits, "max_ms": max(quits)}
    return report


def measure_check_gaps(frames: list[Path]) -> dict[str, Any]:
    """The longest stretch of work between two cancel checks of each case, run to the end without a
    cancel: in wall time, and in the CPU time of the working thread (what the stretch costs on an
    idle core; on a loaded machine the wall time is longer by the share of the CPU it gets)."""
    from focusstudio.core.align import ALIGN_PARAMS, align_stack
    from focusstudio.core.io import load_stack
    from focusstudio.core.pipeline import run_fusion
    from focusstudio.core.progress import CancelToken, run_to_completion

    class Recording(CancelToken):
        def __init__(self) -> None:
            super().__init__()
            self.marks: list[tuple[float, float, str]] = []

        def raise_if_cancelled(self) -> None:
            caller = sys._getframe(1)
            if caller.f_code.co_name == "check_cancelled" and caller.f_back is not None:
                caller = caller.f_back
            site = f"{Path(caller.f_code.co_filename).name}:{caller.f_code.co_name}"
            self.marks.append((time.perf_counter(), time.thread_time(), site))
            super().raise_if_cancelled()

    report: dict[str, Any] = {}
    stack = load_stack(frames)
    for label, method, align, _stage in CANCEL_CASES:
        token = Recording()
        token.marks.append((time.perf_counter(), time.thread_time(), "start"))
        fused = stack
        if align:
            fused, _ = run_to_completion(align_stack(stack, ALIGN_PARAMS.resolve({}), token))
            token.marks.append((time.perf_counter(), time.thread_time(), "aligned"))
        else:
            run_to_completion(run_fusion(fused, method, cancel=token))
        token.marks.append((time.perf_counter(), time.thread_time(), "end"))
        gaps = [(b[0] - a[0], b[1] - a[1], f"{a[2]} -> {b[2]}") for a, b in zip(token.marks, token.marks[1:])]
        # The first stretch holds one-off costs (imports, weights) paid before a run is cancellable.
        longest_wall = max(gaps[1:], key=lambda gap: gap[0])
        longest_cpu = max(gaps[1:], key=lambda gap: gap[1])
        report[label] = {
            "checks": len(token.marks) - 2,
            "run_s": round(token.marks[-1][0] - token.marks[0][0], 2),
            "longest_gap_wall_ms": round(longest_wall[0] * 1000, 1),
            "longest_gap_thread_cpu_ms": round(longest_cpu[1] * 1000, 1),
            "longest_gap_at": longest_cpu[2],
        }
        print(json.dumps({f"gaps {label}": report[label]}), flush=True)
    return report


#: The real stacks of ``--first-frame`` (in ../shared/stacks).
FIRST_FRAME_STACKS = ("macro_object_6", "microscopy_wbc_10")


def first_frame_child(folder: Path) -> int:
    """Open ``folder`` in a fresh window; print (JSON) the seconds to the first frame in the view
    and to the open stack, and the process's CPU seconds over that time. Runs in whichever tree
    PYTHONPATH names (this file is run by path), so it uses only what both trees have."""
    from PySide6.QtWidgets import QApplication

    import focusstudio

    with tempfile.TemporaryDirectory() as scratch:
        window = make_window(Path(scratch))
        _process_events_until(lambda: window.isVisible(), 30)
        QApplication.processEvents()
        loaded: list[float] = []
        window.stackLoaded.connect(lambda: loaded.append(time.perf_counter()))
        cpu, started = time.process_time(), time.perf_counter()
        window.open_paths([str(path) for path in sorted(folder.glob("frame_*"))])
        _process_events_until(lambda: window.viewer.main.image_shape is not None, 600)
        first = time.perf_counter()
        _process_events_until(lambda: bool(loaded), 600)
        cpu = time.process_time() - cpu  # until the stack is open and a frame is shown, whichever is later
        window.close()
    print(json.dumps({"first_frame_s": round(first - started, 3), "open_s": round(loaded[0] - started, 3),
                      "first_before_open": first < loaded[0],
                      # the process's CPU (its threads together) from the opening to the later of the two
                      "cpu_s": round(cpu, 2), "tree": str(Path(focusstudio.__file__).parents[1])}), flush=True)
    return 0


def measure_first_frame(trees: dict[str, Path], repeats: int) -> dict[str, Any]:
    """``repeats`` fresh processes per stack and tree, the trees alternating (a loaded machine
    slows both alike); medians of the seconds to the first frame and to the open stack."""
    import subprocess

    shared = Path(__file__).resolve().parents[2] / "shared" / "stacks"
    report: dict[str, Any] = {"load_average": os.getloadavg()[0], "cpus": os.cpu_count()}
    for name in FIRST_FRAME_STACKS:
        folder = shared / name
        if not folder.is_dir():
            continue
        samples: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
        for _ in range(repeats):
            for label, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree), "QT_QPA_PLATFORM": "offscreen"}
                child = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--first-frame-child", str(folder)],
                    capture_output=True, text=True, timeout=600, env=env, cwd=tree,
                )
                lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
                if child.returncode != 0 or not lines:
                    raise RuntimeError(f"the {label} child failed: {child.stderr.strip()[-800:]}")
                samples[label].append(json.loads(lines[-1]))
        report[name] = {
            label: {
                "median_first_frame_s": round(statistics.median(s["first_frame_s"] for s in runs), 3),
                "median_open_s": round(statistics.median(s["open_s"] for s in runs), 3),
                "median_cpu_s": round(statistics.median(s["cpu_s"] for s in runs), 2),
                # the least disturbed run of each (the machine may be loaded by other work)
                "min_first_frame_s": min(s["first_frame_s"] for s in runs),
                "min_open_s": min(s["open_s"] for s in runs),
                "min_cpu_s": min(s["cpu_s"] for s in runs),
                "runs": runs,
            }
            for label, runs in samples.items()
        }
        print(json.dumps({name: {label: {k: v for k, v in entry.items() if k != "runs"}
                                 for label, entry in report[name].items()}}), flush=True)
    return report


def quit_child(method: str, folder: Path) -> int:
    """Open ``folder``, start ``method``, close the window 0.5 s into its network pass; prints the
    moment of ``close()`` (time.time()) so the parent can time the process's exit."""
    with tempfile.TemporaryDirectory() as scratch:
        window = make_window(Path(scratch))
        window.select_method(method)
        window.set_alignment_mode("off")
        window.open_paths([str(folder / name) for name in sorted(p.name for p in folder.glob("frame_*"))])
        _wait(window.stackLoaded, 600, window.jobFailed)
        seen: list[float] = []
        window.fusion_runner.progressed.connect(lambda event: seen.append(time.perf_counter()) if
                                                event.stage == "network" else None)
        window.fuse()
        _process_events_until(lambda: bool(seen) and time.perf_counter() > seen[0] + 0.5, 600)
        print(f"closing at {time.time()}", flush=True)
        window.close()
    try:
        from focusstudio.gui.app import exit_now
    except ImportError:  # a tree from before exit_now (the baseline): the app returned from main
        return 0
    exit_now(0)  # as the app does once its last window has closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiff16-2700x1800-20", choices=sorted(PRESETS))
    parser.add_argument("--method", default="sf")
    parser.add_argument("--live-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench"))
    parser.add_argument("--skip-stalls", action="store_true", help="only measure live updates")
    parser.add_argument("--skip-live", action="store_true", help="only measure stalls")
    parser.add_argument("--cancel", action="store_true", help="only measure cancel and quit latency")
    parser.add_argument("--cancel-size", type=int, default=1155, help="frame width (height 3/4 of it)")
    parser.add_argument("--cancel-frames", type=int, default=4)
    parser.add_argument("--cancel-repeats", type=int, default=5, help="cancel moments per stage")
    parser.add_argument("--quit-child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--tuning", action="store_true",
                        help="only live tuning on the 6-frame macro stack and a 24 MP synthetic result")
    parser.add_argument("--tuning-methods", default="sf,gff", help="methods for --tuning (comma-separated)")
    parser.add_argument("--big-size", default="6000x4000", help="the synthetic result of --tuning (WxH; none: skip)")
    parser.add_argument("--startup", type=int, default=0, metavar="RUNS", help="only start-up to first paint")
    parser.add_argument("--draft", action="store_true",
                        help="only Fuse to the first image and to the full result on the macro stack (aligned)")
    parser.add_argument("--postprocessing-cpu", action="store_true",
                        help="only the CPU time of one post-processing update, full resolution and preview")
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first-frame", action="store_true",
                        help="only the seconds from opening a real stack to its first frame in the view")
    parser.add_argument("--before", type=Path, help="--first-frame: the tree to compare with (e.g. main)")
    parser.add_argument("--first-frame-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from benchmarks.gui_tuning import (
        measure_draft,
        measure_live_stacks,
        measure_postprocessing_cpu,
        measure_startup,
        startup_child,
    )

    if args.startup_child:
        return startup_child()
    if args.first_frame:
        trees = {"after": Path(__file__).resolve().parents[1]}
        if args.before is not None:
            trees = {"before": args.before.resolve(), **trees}
        measure_first_frame(trees, args.repeats)
        return 0
    if args.startup:
        print(json.dumps({"startup": measure_startup(args.startup)}, indent=1), flush=True)
        return 0
    if args.postprocessing_cpu:
        measure_postprocessing_cpu(args.tuning_methods.split(","), (813, 724), 3)
        return 0

    from focusstudio.gui.app import create_application

    create_application()
    if args.first_frame_child:
        return first_frame_child(args.first_frame_child)
    if args.draft:
        with tempfile.TemporaryDirectory() as scratch:
            print(json.dumps({"draft": measure_draft(args.method, "on", Path(scratch))}), flush=True)
        return 0
    if args.quit_child:
        return quit_child(args.quit_child[0], Path(args.quit_child[1]))
    report: dict[str, Any] = {}
    if args.tuning:
        big = None if args.big_size == "none" else tuple(int(part) for part in args.big_size.split("x"))
        with tempfile.TemporaryDirectory() as scratch:
            report["tuning"] = measure_live_stacks(args.repeats, args.tuning_methods.split(","), Path(scratch),
                                                   big)  # type: ignore[arg-type]
        return 0
    if args.cancel:
        spec = StackSpec(args.cancel_size, args.cancel_size * 3 // 4, args.cancel_frames, breathing=0.003)
        frames, _ = build_stack(spec, args.cache)
        report["cancel"] = {"check_gaps": measure_check_gaps(frames)}
        with tempfile.TemporaryDirectory() as scratch:
            report["cancel"].update(measure_cancel(frames, args.cancel_repeats, Path(scratch)))
        print(json.dumps({"cancel": report["cancel"]}, indent=1), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_live:
            report["live"] = measure_live(args.live_size, args.repeats, args.cache, Path(scratch))
            print(json.dumps({"live": report["live"]}), flush=True)
        if not args.skip_stalls:
            frames, _ = build_stack(PRESETS[args.preset], args.cache)
            report["stalls"] = measure_stalls(frames, args.method, Path(scratch))
            print(json.dumps({"stalls": report["stalls"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
