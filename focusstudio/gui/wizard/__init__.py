"""The training wizard, one module per page: Method (or resume an interrupted run) → Data →
Settings → Train → Result, assembled by :mod:`.wizard`.

A thin GUI over the same trainer as ``focusstudio train`` (:mod:`focusstudio.core.training`):
every page collects choices, every long step (checking the data, synthesizing the preview,
timing a few steps, training, evaluating, fusing the before/after sample) runs as a core
generator in a :class:`~focusstudio.gui.workers.JobRunner`, so the window never blocks. Each
page's ``isComplete`` is what enables Next, so bad input cannot get past a page. The settings'
fields are generated from :data:`~focusstudio.core.training.settings.TRAIN_SPEC`.
"""

from focusstudio.gui.wizard.common import (
    PAGE_DATA,
    PAGE_METHOD,
    PAGE_RESULT,
    PAGE_SETTINGS,
    PAGE_TRAIN,
    WizardChoices,
    format_duration,
)
from focusstudio.gui.wizard.data_page import DataPage
from focusstudio.gui.wizard.method_page import MethodPage
from focusstudio.gui.wizard.result_page import ResultPage
from focusstudio.gui.wizard.settings_page import SettingsPage
from focusstudio.gui.wizard.train_page import TrainPage
from focusstudio.gui.wizard.wizard import TrainingWizard, open_training_wizard

__all__ = [
    "PAGE_DATA", "PAGE_METHOD", "PAGE_RESULT", "PAGE_SETTINGS", "PAGE_TRAIN", "DataPage", "MethodPage",
    "ResultPage", "SettingsPage", "TrainPage", "TrainingWizard", "WizardChoices", "format_duration",
    "open_training_wizard",
]
