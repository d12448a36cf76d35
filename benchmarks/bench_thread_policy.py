"""OpenMP wait policy and thread count of the deep methods, on an idle machine and with one core taken.

torch's CPU wheel runs its intra-op threads on GNU OpenMP (libgomp). Between parallel regions an
idle libgomp thread spins for ``GOMP_SPINCOUNT`` iterations (300,000 by default, ~10+ ms) before
it sleeps. When another process holds a core, the spinning threads steal the time slices the
working thread needs, and a warm SESF/GACN fusion took 4.4× longer (issue #20). This benchmark
runs ``benchmarks.bench_deep_methods`` in a fresh process per setting, alternately without and with
a competing busy process, so the chosen default (``focusstudio/core/runtime.py``: spin 10k) can be
checked:

    python -m benchmarks.bench_thread_policy --runs 5 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict

#: The competing busy process: it spins, and stops by itself once this benchmark is gone (a killed
#: benchmark must not leave a core taken for the next one).
BUSY_LOOP = (
    "import os, sys\n"
    "parent = int(sys.argv[1])\n"
    "while True:\n"
    "    for _ in range(10_000_000): pass\n"
    "    if os.getppid() != parent: break\n"
)

#: name -> environment of one setting. libgomp's default spin count is 300,000.
SETTINGS: dict[str, dict[str, str]] = {
    "libgomp default (spin 300k)": {"GOMP_SPINCOUNT": "300000"},
    "spin 10k": {"GOMP_SPINCOUNT": "10000"},
    "spin 1k": {"GOMP_SPINCOUNT": "1000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": "1"},
}

_LINE = re.compile(r"^(\w+)\s+median wall ([0-9.]+) s .*median CPU ([0-9.]+) s")


def run_setting(env_extra: dict[str, str], methods: list[str], runs: int) -> dict[str, tuple[float, float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(env_extra)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_deep_methods", "--methods", *methods, "--runs", str(runs)],
        env=env, capture_output=True, text=True, check=True,
    )
    found: dict[str, tuple[float, float]] = {}
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match:
            found[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["sesf", "gacn"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of every setting and condition")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args(argv)
    walls: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for condition in ("idle", "one core busy"):
            competitor = None
            if condition != "idle":
                competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())])
            try:
                for name in args.settings:
                    for method, (wall, _cpu) in run_setting(SETTINGS[name], args.methods, args.runs).items():
                        walls[(condition, name, method)].append(wall)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load before the end {load:.1f}; median of the per-round medians (s)")
    columns = [f"{c} {m}" for c in ("idle", "one core busy") for m in args.methods]
    print(f"{'setting':30s} " + " ".join(f"{column:>22s}" for column in columns))
    for name in args.settings:
        cells = [walls[(c, name, m)] for c in ("idle", "one core busy") for m in args.methods]
        print(f"{name:30s} " + " ".join(f"{statistics.median(v):22.3f}" if v else f"{'-':>22s}" for v in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
