"""Controls that would do nothing are greyed with the reason, as the method declares it: the
post-processing of gacn, mfifgan and twostream under the 'neighbours' strategy on 3+ frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QComboBox
from pytestqt.qtbot import QtBot

from focusstudio.core.methods.registry import get_method
from focusstudio.gui.main_window import MainWindow
from tests.gui import fakes
from tests.gui.conftest import open_and_wait


def _disabled(window: MainWindow) -> set[str]:
    form = window.param_form
    return {spec.name for spec in form.params if not form.editor(spec.name).isEnabled()}


def _post(method: str) -> set[str]:
    return {spec.name for spec in get_method(method).params if spec.stage == "post"}


@pytest.mark.parametrize("method", ["gacn", "mfifgan", "twostream"])
def test_neighbour_strategy_greys_the_post_processing_on_three_frames(
    qtbot: QtBot, window: MainWindow, stack_folder: Path, method: str
) -> None:
    window.select_method(method)
    assert _disabled(window) == set()  # no stack: nothing is known about the run
    open_and_wait(qtbot, window, [stack_folder])
    assert _post(method) and _disabled(window) == _post(method)
    form = window.param_form
    for name in _post(method):
        assert form.editor(name).toolTip().startswith("Not used now: not used by the 'neighbours' strategy")
    assert form.unused_note.isVisibleTo(form) and "serial" in form.unused_note.text()
    strategy = form.editor("strategy")
    assert isinstance(strategy, QComboBox) and strategy.isEnabled()
    # The serial strategy uses them: enabled, with their own tooltips.
    strategy.setCurrentText("serial")
    assert _disabled(window) == set() and not form.unused_note.isVisibleTo(form)
    assert not any(form.editor(name).toolTip().startswith("Not used") for name in _post(method))
    strategy.setCurrentText("auto")
    assert _disabled(window) == _post(method)
    # Two frames ticked: the pair decision uses its post-processing.
    window.stack_panel.set_included(2, False)
    assert _disabled(window) == set()
    window.stack_panel.set_included(2, True)
    assert _disabled(window) == _post(method)


def test_a_method_using_every_parameter_greys_none(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    window.select_method("sf")
    open_and_wait(qtbot, window, [stack_folder])
    assert _disabled(window) == set() and not window.param_form.unused_note.isVisibleTo(window.param_form)


def test_the_greyed_set_is_the_methods_declaration(qtbot: QtBot, window: MainWindow, stack_folder: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in the window names a parameter: whatever the method says is unused is greyed."""
    def unused(self: Any, params: Any, frames: int) -> dict[str, str]:
        return {"bias": f"not used with {frames} frames"} if params["rule"] == "first" else {}

    monkeypatch.setattr(fakes.FakeMethod, "unused_params", unused)
    window.select_method(fakes.FakeMethod.name)
    open_and_wait(qtbot, window, [stack_folder])
    assert _disabled(window) == set()
    window.param_form.set_values({"rule": "first"})
    assert _disabled(window) == {"bias"}
    assert window.param_form.editor("bias").toolTip().startswith("Not used now: not used with 3 frames")


def test_sesf_blend_greys_only_what_it_does_not_use(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    """Blend on 3+ frames keeps the label opening (morphology) and drops small-region removal and
    the guided filter: only those are greyed."""
    window.select_method("sesf")
    open_and_wait(qtbot, window, [stack_folder])
    assert _disabled(window) == {"use_srr", "area_fraction", "use_guided_filter", "gf_radius", "gf_eps",
                                 "clamp_weight"}
    assert window.param_form.editor("use_morphology").isEnabled()
    strategy = window.param_form.editor("strategy")
    assert isinstance(strategy, QComboBox)
    strategy.setCurrentText("nway")
    assert _disabled(window) == {"classical_power"}  # blend's weighting of the deep SF only
