"""Run one benchmark module alternately on a "before" source tree and on this one (B1 A1 B2 A2 ...).

.venv/bin/python -m benchmarks.alternate --before-src DIR [--rounds K] MODULE [ARGS...]

e.g. ``flock /tmp/accord-bench.lock .venv/bin/python -m benchmarks.alternate --before-src
/tmp/before --rounds 3 benchmarks.federation 20000 --reps 3``. DIR is a whole tree (``git archive
main | tar -x -C DIR``): its own copy of MODULE runs there with its ``src/`` first on the path, so
both sides use the same interpreter and packages and differ only in the code (``--after-src``:
an exported "after" tree too, so that the worktree can change while it runs). Each run's output
is printed as it ends, labelled; at the end, the lines that carry the numbers (``--keep``
patterns) are listed side by side per round. Prints the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

KEEP = (r"^CPU per event", r"^events/s", r"^A: ", r"^B: ", r"^ledger ", r"received")


def run(tree: Path, module: str, args: list[str]) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tree)])
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    failed = f"[exit {done.returncode}]\n{done.stderr[-2000:]}" if done.returncode else ""
    return done.stdout + failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-src", required=True, help="the 'before' tree (with src/)")
    parser.add_argument("--after-src", help="the 'after' tree (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="append", help="a regex of output lines to summarise")
    parser.add_argument("module")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    after = Path(ns.after_src) if ns.after_src else Path(__file__).resolve().parents[1]
    trees = {"before": Path(ns.before_src).resolve(), "after": after.resolve()}
    keep = [re.compile(p) for p in (ns.keep or KEEP)]
    print(f"load average {os.getloadavg()}", flush=True)
    summary: list[tuple[int, str, list[str]]] = []
    for n in range(1, ns.rounds + 1):
        for label, tree in trees.items():
            out = run(tree, ns.module, ns.args)
            print(f"--- {label} {n} ({tree})\n{out}", flush=True)
            lines = [line for line in out.splitlines() if any(k.search(line) for k in keep)]
            summary.append((n, label, lines))
    print(f"load average {os.getloadavg()}")
    for n, label, lines in summary:
        print(f"{label} {n}:")
        for line in lines:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
