"""A parameter form generated from a method's :class:`~focusstudio.core.params.ParamSpec` declarations.

Nothing here knows a parameter by name: ranges, defaults, steps, tooltips and the live-update
marker all come from the declarations, so a new method gets its controls for free; which
parameters a run would not use comes from the method too (``FusionMethod.unused_params``), and
their controls are disabled with the reason (:meth:`ParamForm.set_unused`). The form is reusable
outside the main window (the training wizard, dialogs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from focusstudio.core.errors import ParameterError
from focusstudio.core.params import ParamSet, ParamSpec

#: Integer ranges up to this span get a slider; wider ones a spin box.
MAX_SLIDER_SPAN = 1000
_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12


class LogSlider(QWidget):
    """A slider over log10(value) with an editable value field (for eps-like parameters)."""

    valueChanged = Signal(float)
    _TICKS = 1000

    def __init__(self, minimum: float, maximum: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if minimum <= 0 or maximum <= minimum:
            raise ValueError("a log slider needs 0 < minimum < maximum")
        self._low, self._high = math.log10(minimum), math.log10(maximum)
        self._value = minimum
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, self._TICKS)
        self.field = QLineEdit()
        self.field.setMaximumWidth(90)
        validator = QDoubleValidator(minimum, maximum, 12, self.field)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.field.setValidator(validator)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.field)
        self.slider.valueChanged.connect(self._from_slider)
        self.field.editingFinished.connect(self._from_field)
        self._show(minimum)

    def value(self) -> float:
        return self._value

    def setValue(self, value: float) -> None:
        value = min(max(float(value), 10**self._low), 10**self._high)
        changed = value != self._value
        self._value = value
        self._show(value)
        if changed:
            self.valueChanged.emit(value)

    def _show(self, value: float) -> None:
        position = (math.log10(value) - self._low) / (self._high - self._low) * self._TICKS
        self.slider.blockSignals(True)
        self.slider.setValue(round(position))
        self.slider.blockSignals(False)
        self.field.setText(f"{value:.3g}")

    def _from_slider(self, tick: int) -> None:
        value = 10 ** (self._low + (self._high - self._low) * tick / self._TICKS)
        # Round to 3 significant digits so the value shown is the value used.
        self.setValue(float(f"{value:.3g}"))

    def _from_field(self) -> None:
        try:
            self.setValue(float(self.field.text()))
        except ValueError:
            self._show(self._value)


@dataclass
class _Field:
    """One generated editor and how to read, write and watch it."""

    spec: ParamSpec
    widget: QWidget
    get: Callable[[], Any]
    set: Callable[[Any], None]
    connect: Callable[[Callable[..., None]], None]


def _decimals_for(spec: ParamSpec) -> int:
    """Decimals of a float field: its step's (or a thousandth of its range), and never fewer than
    its default needs: a field that rounds its default changes the run (ecc_epsilon's 1e-5 shown
    with 4 decimals became 0, so ECC never stopped early and the window aligned ~5× slower than
    the CLI, issue 19)."""
    if spec.step is not None and spec.step > 0:
        decimals = max(0, min(8, math.ceil(-math.log10(spec.step) - 1e-9)))
    elif spec.minimum is not None and spec.maximum is not None:
        span = spec.maximum - spec.minimum
        decimals = max(0, min(8, math.ceil(-math.log10(span / 1000.0)))) if span > 0 else 2
    else:
        decimals = 4
    return max(decimals, _decimals_of(spec.default))


def _decimals_of(value: Any) -> int:
    """The fewest decimals (at most 8) that keep ``value`` as it is."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return next((d for d in range(9) if math.isclose(round(value, d), value, rel_tol=1e-9, abs_tol=0.0)), 8)


def _build_field(spec: ParamSpec) -> _Field:
    bounded = spec.minimum is not None and spec.maximum is not None
    if spec.kind == "bool":
        box = QCheckBox()
        return _Field(spec, box, box.isChecked, lambda v: box.setChecked(bool(v)), box.toggled.connect)
    if spec.kind == "choice":
        combo = QComboBox()
        combo.addItems(list(spec.choices))
        return _Field(
            spec, combo, combo.currentText, lambda v: combo.setCurrentText(str(v)),
            combo.currentTextChanged.connect,
        )
    if spec.kind == "int":
        if bounded and spec.maximum - spec.minimum <= MAX_SLIDER_SPAN:  # type: ignore[operator]
            slider = QLabeledSlider(Qt.Orientation.Horizontal)
            slider.setRange(int(spec.minimum), int(spec.maximum))  # type: ignore[arg-type]
            slider.setSingleStep(int(spec.step or 1))
            slider.setPageStep(max(1, int(spec.step or 1)) * 5)
            return _Field(spec, slider, lambda: int(slider.value()), lambda v: slider.setValue(int(v)),
                          slider.valueChanged.connect)
        spin = QSpinBox()
        spin.setRange(int(spec.minimum if spec.minimum is not None else -_INT_LIMIT),
                      int(spec.maximum if spec.maximum is not None else _INT_LIMIT))
        spin.setSingleStep(int(spec.step or 1))
        if spec.special_value:
            spin.setSpecialValueText(spec.special_value)  # shown at the minimum
        return _Field(spec, spin, spin.value, lambda v: spin.setValue(int(v)), spin.valueChanged.connect)
    if spec.words and spec.kind == "float":
        return _worded_float_field(spec)
    # float
    if spec.log_scale and bounded and spec.minimum > 0:  # type: ignore[operator]
        log_slider = LogSlider(float(spec.minimum), float(spec.maximum))  # type: ignore[arg-type]
        return _Field(spec, log_slider, log_slider.value, log_slider.setValue, log_slider.valueChanged.connect)
    decimals = _decimals_for(spec)
    if bounded:
        double_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        double_slider.setRange(float(spec.minimum), float(spec.maximum))  # type: ignore[arg-type]
        double_slider.setDecimals(decimals)
        double_slider.setSingleStep(spec.step or (spec.maximum - spec.minimum) / 100.0)  # type: ignore[operator]
        return _Field(
            spec, double_slider, lambda: round(float(double_slider.value()), decimals),
            lambda v: double_slider.setValue(float(v)), double_slider.valueChanged.connect,
        )
    double_spin = QDoubleSpinBox()
    double_spin.setDecimals(decimals)
    double_spin.setRange(
        float(spec.minimum) if spec.minimum is not None else -_FLOAT_LIMIT,
        float(spec.maximum) if spec.maximum is not None else _FLOAT_LIMIT,
    )
    if spec.step:
        double_spin.setSingleStep(spec.step)
    else:
        double_spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
    return _Field(spec, double_spin, double_spin.value, lambda v: double_spin.setValue(float(v)),
                  double_spin.valueChanged.connect)


def _worded_float_field(spec: ParamSpec) -> _Field:
    """A number that also takes a word ("auto"): a spin box whose bottom step, below the declared
    minimum, shows and means the word."""
    spin = QDoubleSpinBox()
    decimals = _decimals_for(spec)
    spin.setDecimals(decimals)
    step = spec.step or 0.01
    minimum = float(spec.minimum if spec.minimum is not None else 0.0)
    spin.setRange(minimum - step, float(spec.maximum if spec.maximum is not None else _FLOAT_LIMIT))
    spin.setSingleStep(step)
    spin.setSpecialValueText(spec.words[0])  # shown at the bottom of the range

    def get() -> Any:
        value = spin.value()
        return spec.words[0] if value < minimum else round(float(value), decimals)

    def put(value: Any) -> None:
        spin.setValue(spin.minimum() if isinstance(value, str) else float(value))

    return _Field(spec, spin, get, put, spin.valueChanged.connect)


def tooltip_for(spec: ParamSpec) -> str:
    """The help text plus range, default and whether the parameter updates live."""
    lines = [spec.help.strip() or spec.label]
    if spec.kind == "choice":
        lines.append("Choices: " + ", ".join(spec.choices))
    elif spec.minimum is not None or spec.maximum is not None:
        low = "−∞" if spec.minimum is None else f"{spec.minimum:g}"
        high = "∞" if spec.maximum is None else f"{spec.maximum:g}"
        lines.append(f"Range: {low} … {high}")
    lines.append(f"Default: {spec.default}")
    lines.append(
        "Post-processing: changes update the result live without re-running the analysis."
        if spec.stage == "post"
        else "Analysis: changing it needs a new fusion (press Fuse)."
    )
    lines.append(f"CLI: --set {spec.name}=VALUE")
    return "\n".join(lines)


class ParamForm(QWidget):
    """Editors for every declared parameter, grouped into analysis and post-processing."""

    #: (values) every parameter's current value, after the user or a reset/preset changed any.
    valuesChanged = Signal(dict)

    #: Headings of the two groups; other forms (the training wizard) name their groups differently.
    DEFAULT_GROUP_TITLES: Mapping[str, str] = {"analysis": "Analysis", "post": "Post-processing (live)"}

    def __init__(self, params: ParamSet | None = None, show_reset: bool = True,
                 parent: QWidget | None = None, group_titles: Mapping[str, str] | None = None,
                 describe: Callable[[ParamSpec], str] | None = None) -> None:
        super().__init__(parent)
        self._group_titles = dict(group_titles or self.DEFAULT_GROUP_TITLES)
        self._describe = describe or tooltip_for
        self._fields: dict[str, _Field] = {}
        self._labels: dict[str, QLabel] = {}
        #: Parameter → why the run would not use it (its control is disabled).
        self._unused: dict[str, str] = {}
        self._params = ParamSet()
        self._bulk_update = False
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._body = QWidget()
        self._layout.addWidget(self._body)
        #: Says, under the controls, why some are greyed (their tooltips say it too).
        self.unused_note = QLabel()
        self.unused_note.setObjectName("unusedParamsNote")
        self.unused_note.setWordWrap(True)
        self.unused_note.setVisible(False)
        self._layout.addWidget(self.unused_note)
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setToolTip("Set every parameter of this method back to its declared default")
        self.reset_button.clicked.connect(self.reset_defaults)
        self.reset_button.setVisible(show_reset)
        self._layout.addWidget(self.reset_button)
        self.set_params(params or ParamSet())

    # ------------------------------------------------------------------ building
    @property
    def params(self) -> ParamSet:
        return self._params

    def set_params(self, params: ParamSet) -> None:
        """Rebuild the editors for another set of declarations (another method)."""
        self._params = params
        self._fields.clear()
        self._labels.clear()
        self._unused = {}
        self.unused_note.setVisible(False)
        old_body = self._body
        self._body = QWidget()
        layout = QVBoxLayout(self._body)
        layout.setContentsMargins(0, 0, 0, 0)
        groups = [
            (self._group_titles.get("analysis", ""), [s for s in params if s.stage == "analysis"]),
            (self._group_titles.get("post", ""), [s for s in params if s.stage == "post"]),
        ]
        for title, specs in groups:
            if not specs:
                continue
            if title:
                layout.addWidget(QLabel(f"<b>{title}</b>"))
            form = QFormLayout()
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            for spec in specs:
                field = _build_field(spec)
                field.set(spec.default)
                tip = self._describe(spec)
                field.widget.setToolTip(tip)
                field.widget.setObjectName(f"param_{spec.name}")
                label = QLabel(spec.label)
                label.setToolTip(tip)
                form.addRow(label, field.widget)
                field.connect(self._on_edited)
                self._fields[spec.name] = field
                self._labels[spec.name] = label
            layout.addLayout(form)
        if not len(params):
            layout.addWidget(QLabel("This method has no parameters."))
        self._layout.replaceWidget(old_body, self._body)
        # Hidden now: deleteLater() waits for the event loop, and until then the old editors would
        # still be painted under the new ones.
        old_body.hide()
        old_body.deleteLater()
        self.reset_button.setEnabled(bool(len(params)))

    def set_unused(self, reasons: Mapping[str, str]) -> None:
        """Disable the controls of the parameters in ``reasons`` (name → why the run would not use
        it), with the reason in their tooltips and under the form; the others are enabled."""
        reasons = {name: reason for name, reason in reasons.items() if name in self._fields}
        if reasons == self._unused:
            return
        self._unused = dict(reasons)
        for name, field in self._fields.items():
            reason = reasons.get(name)
            tip = self._describe(field.spec)
            if reason is not None:
                tip = f"Not used now: {reason}.\n\n{tip}"
            for widget in (field.widget, self._labels[name]):
                widget.setEnabled(reason is None)
                widget.setToolTip(tip)
        if reasons:
            titles = ", ".join(self._fields[name].spec.label for name in reasons)
            why = "; ".join(dict.fromkeys(reasons.values()))
            self.unused_note.setText(f"<i>Greyed ({titles}): {why}.</i>")
        self.unused_note.setVisible(bool(reasons))

    def unused(self) -> dict[str, str]:
        """The parameters whose controls are disabled now, with the reason."""
        return dict(self._unused)

    # ------------------------------------------------------------------ values
    def editor(self, name: str) -> QWidget:
        """The widget editing ``name`` (for tests and for focusing a field)."""
        return self._fields[name].widget

    def values(self) -> dict[str, Any]:
        return {name: field.get() for name, field in self._fields.items()}

    def set_values(self, values: Mapping[str, Any]) -> list[str]:
        """Show ``values`` (validated against the declarations); returns the names skipped."""
        skipped: list[str] = []
        self._bulk_update = True
        try:
            for name, value in values.items():
                field = self._fields.get(name)
                if field is None:
                    skipped.append(name)
                    continue
                try:
                    field.set(field.spec.validate(value))
                except ParameterError:
                    skipped.append(name)
        finally:
            self._bulk_update = False
        self.valuesChanged.emit(self.values())
        return skipped

    def reset_defaults(self) -> None:
        self.set_values(self._params.defaults())

    def _on_edited(self, *_: object) -> None:
        if not self._bulk_update:
            self.valuesChanged.emit(self.values())
