"""``python -m focusstudio`` runs the CLI."""

import multiprocessing
import sys

from focusstudio.cli import main

if __name__ == "__main__":
    # Needed before anything else when running as a frozen (PyInstaller) executable.
    multiprocessing.freeze_support()
    sys.exit(main())
