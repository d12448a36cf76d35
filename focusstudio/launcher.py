"""Entry point of the standalone app (``FocusStudio``).

``FocusStudio`` opens the window; ``FocusStudio PATH...`` opens it with those files or folders;
``FocusStudio --self-test`` fuses the bundled sample headlessly and exits 0/1;
``FocusStudio fuse ...`` (any CLI command) runs the command line.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("--self-test", "self-test"):
        from focusstudio.selftest import run_self_test

        return run_self_test()
    from focusstudio.cli import COMMANDS

    if args and (args[0] in COMMANDS or args[0] in ("-h", "--help", "--version")):
        from focusstudio.cli import main as cli_main

        return cli_main(args)
    from focusstudio.cli import main as cli_main

    return cli_main(["gui", *args])


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
