"""PyInstaller entry script: the standalone ``FocusStudio`` executable."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from focusstudio.launcher import main

    sys.exit(main())
