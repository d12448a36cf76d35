"""The parameter form is generated from ParamSpec declarations: editors, ranges, tooltips, reset, presets."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QComboBox, QSpinBox
from pytestqt.qtbot import QtBot
from superqt import QLabeledDoubleSlider, QLabeledSlider

from focusstudio.gui.main_window import MainWindow
from focusstudio.gui.param_form import LogSlider, ParamForm
from focusstudio.gui.settings import PresetStore
from tests.gui.fakes import FakeMethod


def test_editors_follow_the_declarations(qtbot: QtBot) -> None:
    form = ParamForm(FakeMethod.params)
    qtbot.addWidget(form)
    window = form.editor("window")
    assert isinstance(window, QLabeledSlider)
    assert (window.minimum(), window.maximum(), window.value()) == (1, 9, 3)
    bias = form.editor("bias")
    assert isinstance(bias, QLabeledDoubleSlider)
    assert (bias.minimum(), bias.maximum()) == (-1.0, 1.0)
    assert isinstance(form.editor("smooth"), QCheckBox)
    rule = form.editor("rule")
    assert isinstance(rule, QComboBox)
    assert [rule.itemText(i) for i in range(rule.count())] == ["max", "first"]
    assert isinstance(form.editor("eps"), LogSlider)
    # A range too wide for a slider gets a spin box with the declared bounds.
    passes = form.editor("passes")
    assert isinstance(passes, QSpinBox)
    assert (passes.minimum(), passes.maximum()) == (0, 100000)
    tip = form.editor("bias").toolTip()
    assert "Activity advantage given to the first frame." in tip
    assert "Range: -1 … 1" in tip and "live" in tip
    assert "press Fuse" in form.editor("window").toolTip()
    assert form.values() == FakeMethod.params.defaults()


def test_set_values_and_reset_to_defaults(qtbot: QtBot) -> None:
    form = ParamForm(FakeMethod.params)
    qtbot.addWidget(form)
    changed: list[dict[str, object]] = []
    form.valuesChanged.connect(changed.append)
    skipped = form.set_values({"window": 7, "bias": 0.25, "smooth": True, "rule": "first", "eps": 1e-4,
                               "unknown": 1, "passes": -5})
    assert skipped == ["unknown", "passes"]  # unknown name, and a value below the minimum
    values = form.values()
    assert values["window"] == 7 and values["bias"] == 0.25 and values["smooth"] is True
    assert values["rule"] == "first" and abs(values["eps"] - 1e-4) < 1e-12
    assert changed[-1] == values
    form.reset_button.click()
    assert form.values() == FakeMethod.params.defaults()


def test_user_edits_emit_the_values(qtbot: QtBot) -> None:
    form = ParamForm(FakeMethod.params)
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.valuesChanged) as blocker:
        form.editor("smooth").click()
    assert blocker.args[0]["smooth"] is True


def test_log_slider_maps_the_track_logarithmically(qtbot: QtBot) -> None:
    slider = LogSlider(1e-6, 1.0)
    qtbot.addWidget(slider)
    slider.slider.setValue(500)  # the middle of six decades
    assert abs(slider.value() - 1e-3) < 1e-9
    slider.field.setText("0.5")
    slider.field.editingFinished.emit()
    assert slider.value() == 0.5


def test_presets_are_saved_per_method(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    window.param_form.set_values({"bias": 0.5, "window": 5})
    window.save_preset("strong bias")
    assert PresetStore(tmp_path / "presets.json").get(FakeMethod.name, "strong bias")["bias"] == 0.5
    window.param_form.reset_defaults()
    index = window.preset_combo.findData("strong bias")
    window.preset_combo.activated.emit(index)
    assert window.param_form.values()["bias"] == 0.5 and window.param_form.values()["window"] == 5
    window.select_method("sf")
    assert window.preset_combo.findData("strong bias") == -1


def test_unavailable_methods_are_disabled_with_the_reason(window: MainWindow) -> None:
    combo = window.method_combo
    index = combo.findData("unavailable_test")
    item = combo.model().item(index)
    assert not item.isEnabled()
    assert "weights missing: fake_weights.pth" in item.toolTip()
    assert "sf" in window.method_names()


def test_the_form_follows_the_chosen_method(window: MainWindow) -> None:
    window.select_method("sf")
    assert window.param_form.params is window.method.params
    assert set(window.param_form.values()) == {spec.name for spec in window.method.params}
    window.param_form.set_values({"sf_radius": 9})
    window.select_method("fake_test")
    window.select_method("sf")
    assert window.param_form.values()["sf_radius"] == 9  # remembered while the window is open


def test_every_form_shows_its_defaults_unrounded(qtbot: QtBot) -> None:
    """A field with too few decimals changes the run: ecc_epsilon's 1e-5 on a 4-decimal slider
    became 0, so ECC never stopped early and the window aligned ~5× slower than the CLI (issue 19)."""
    from focusstudio.core.align import ALIGN_PARAMS
    from focusstudio.core.methods.registry import get_method, list_methods

    param_sets = {"alignment": ALIGN_PARAMS} | {name: get_method(name).params for name in list_methods()}
    for name, params in param_sets.items():
        form = ParamForm(params)
        qtbot.addWidget(form)
        assert form.values() == params.defaults(), name
