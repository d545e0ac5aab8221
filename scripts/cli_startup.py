"""How long `rpl-cds --help` and `rpl-cds --version` take to start (issue 18: well under a
second), against a bare `python -c pass` on the same machine. A measurement, not a test:

    .venv/bin/python scripts/cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "rpl-cds"
RUNS = 7


def median_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    for name, argv in (
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("rpl-cds --help", [str(CLI), "--help"]),
        ("rpl-cds call --help", [str(CLI), "call", "--help"]),
        ("rpl-cds --version", [str(CLI), "--version"]),
    ):
        print(f"{name:<22} {median_seconds(argv) * 1000:7.0f} ms (median of {RUNS})")


if __name__ == "__main__":
    main()
