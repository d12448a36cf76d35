"""Screenshots of the window on real N-frame stacks: the first frame in the view while the rest
decode, the lost blocks of sharpness recall as an overlay with its legend and figure, and the
post-processing greyed where the N-frame strategy does not use it (issues 15 and 19).

    xvfb-run -s "-screen 0 1600x1000x24" python -m benchmarks.nframe_window_shots [--out DIR]

Each picture is ``QWidget.grab()`` of the window. Needs ``../shared/stacks`` (microscopy_wbc_10,
macro_dsc_28, misc_houses).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STACKS = REPO.parent / "shared" / "stacks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--only", default="opening,lost,greyed", help="which shots (comma-separated)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    from focusstudio.core.io import tolerant
    from focusstudio.gui.app import create_application
    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.settings import AppSettings, PresetStore

    create_application()
    from benchmarks.fluency_window_shots import _grab, _settle
    from benchmarks.gui_latency import _process_events_until, _wait

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="focusstudio-nframe-shots-"))
    wanted = set(args.only.split(","))
    written: list[Path] = []

    def new_window(name: str, method: str, metrics: bool = False) -> Any:
        window = MainWindow(AppSettings(scratch / f"{name}.ini"), PresetStore(scratch / f"{name}.json"))
        window.select_method(method)
        window.resize(1600, 1000)
        window.show()
        window.confirm_discard = False
        window.metrics_panel.auto.setChecked(metrics)
        return window

    if "opening" in wanted:
        # 1. A 10-frame stack opening: 4 frames decoded, the user clicked the third; the rest wait
        # (held here so the picture shows the moment, not a race with the decoder).
        gate, real = threading.Event(), tolerant.decode_frame
        count = [0]

        def held(info: Any) -> Any:
            count[0] += 1
            if count[0] > 4:
                gate.wait(120)
            return real(info)

        tolerant.decode_frame = held  # type: ignore[assignment]
        window = new_window("opening", "sf")
        window.open_paths([str(STACKS / "microscopy_wbc_10")])
        panel = window.stack_panel
        _process_events_until(lambda: panel.list.count() >= 4 and window.viewer.main.image_shape is not None, 120)
        panel.list.setCurrentRow(2)
        _process_events_until(lambda: window.viewer.main_caption.text().startswith("Frame 3"), 60)
        _settle(400)
        written.append(_grab(window, args.out / "15-first-frames-while-opening.png"))
        gate.set()
        _wait(window.stackLoaded, 600)
        tolerant.decode_frame = real  # type: ignore[assignment]
        window.close()
    if "lost" in wanted:
        # 2. sf on the 28-frame beetle: the blocks it loses, red over the result, and the recall.
        window = new_window("lost", "sf", metrics=True)
        window.open_paths([str(STACKS / "macro_dsc_28")])
        _wait(window.stackLoaded, 600)
        window.fuse()
        _wait(window.resultReady, 1800)
        _wait(window.metricsReady, 1800)
        window.state.show_only("lost_blocks")
        window.state.update_overlay("lost_blocks", opacity=0.45)
        window.layers_dock.raise_()
        _settle(600)
        written.append(_grab(window, args.out / "16-lost-blocks-overlay.png"))
        window.close()
    if "greyed" in wanted:
        # 3. MFIF-GAN on 3 frames: its default 'neighbours' strategy uses no post-processing.
        window = new_window("greyed", "mfifgan")
        window.open_paths([str(STACKS / "misc_houses")])
        _wait(window.stackLoaded, 600)
        window.method_dock.raise_()
        _settle(400)
        written.append(_grab(window, args.out / "17-nframe-strategy-greys-post.png"))
        window.close()
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
