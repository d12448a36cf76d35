"""Batch fusion: many stacks from one command or one window, on this machine or a Dask cluster.

* :mod:`~focusstudio.core.batch.sources` finds the stacks (folder of folders, manifest, pattern);
* :mod:`~focusstudio.core.batch.runner` fuses one stack and applies the output policy;
* :mod:`~focusstudio.core.batch.engine` runs them all and writes the run report;
* :mod:`~focusstudio.core.batch.distributed` runs them on ``dask.distributed`` (optional extra);
* :mod:`~focusstudio.core.batch.command` is ``focusstudio batch``.
"""

from focusstudio.core.batch.engine import REPORT_NAME, BatchReport, StackDone, StackStarted, run_batch, write_report
from focusstudio.core.batch.runner import DEFAULT_TEMPLATE, BatchSettings, StackOutcome, run_stack
from focusstudio.core.batch.sources import StackSpec, discover_stacks

__all__ = [
    "DEFAULT_TEMPLATE",
    "REPORT_NAME",
    "BatchReport",
    "BatchSettings",
    "StackDone",
    "StackOutcome",
    "StackSpec",
    "StackStarted",
    "discover_stacks",
    "run_batch",
    "run_stack",
    "write_report",
]
