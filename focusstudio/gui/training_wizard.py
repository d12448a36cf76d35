"""The training wizard's import path kept for the window and older code: it lives in
:mod:`focusstudio.gui.wizard` (one module per page)."""

from focusstudio.gui.wizard import (
    PAGE_DATA,
    PAGE_METHOD,
    PAGE_RESULT,
    PAGE_SETTINGS,
    PAGE_TRAIN,
    DataPage,
    MethodPage,
    ResultPage,
    SettingsPage,
    TrainingWizard,
    TrainPage,
    WizardChoices,
    format_duration,
    open_training_wizard,
)

__all__ = [
    "PAGE_DATA", "PAGE_METHOD", "PAGE_RESULT", "PAGE_SETTINGS", "PAGE_TRAIN", "DataPage", "MethodPage",
    "ResultPage", "SettingsPage", "TrainPage", "TrainingWizard", "WizardChoices", "format_duration",
    "open_training_wizard",
]
