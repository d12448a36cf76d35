"""The window re-uses the registration of unchanged frames through the core's pair cache: a fusion
after a change of crop or after removing a frame registers no pair again; a changed estimator
setting does."""

from __future__ import annotations

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from focusstudio.core.align import registration_cache
from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait
from tests.gui.test_alignment import shifted  # noqa: F401  (the fixture: a 3-frame handheld stack)


def test_refusing_after_a_crop_change_or_a_removed_frame_registers_no_pair_again(
    qtbot: QtBot, shifted: MainWindow, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    import focusstudio.core.align.estimate as estimate

    registration_cache().clear()  # another test may have registered these very frames
    registered: list[int] = []
    original = estimate.register_pair

    def spy(*args: object, **kwargs: object) -> object:
        registered.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(estimate, "register_pair", spy)
    fuse_and_wait(qtbot, shifted)
    first = shifted.results["A"].alignment
    assert first is not None and len(registered) == 2  # frames 1 and 3 onto frame 2
    # Crop off: the window's own cache of the last registration does not apply (other settings),
    # the pairs come from the core's cache.
    shifted.align_form.set_values({"crop": False})
    fuse_and_wait(qtbot, shifted)
    uncropped = shifted.results["A"]
    assert uncropped.request.aligned is None and len(registered) == 2
    assert uncropped.alignment is not None and uncropped.alignment is not first
    assert all(np.allclose(a, b, atol=1e-9) for a, b in zip(uncropped.alignment.matrices, first.matrices, strict=True))
    assert uncropped.result.image.shape[:2] == first.shape  # kept at full size: the new setting applied
    # Frame 3 removed: frame 1 onto frame 2 is the pair registered before.
    shifted.set_alignment_mode("on")
    shifted.stacks.remove_frames([2])
    fuse_and_wait(qtbot, shifted)
    assert len(shifted.results["A"].alignment.frames) == 2 and len(registered) == 2
    # Another estimator setting: registered again.
    shifted.align_form.set_values({"model": "translation"})
    fuse_and_wait(qtbot, shifted)
    assert len(registered) == 3
