"""Peak memory and seconds per iteration of single-level runs, tiled and untiled (docs/benchmarks.md,
"Huge images").

    python benchmarks/tiles.py CONTENT STYLE --run 1024:0 --run 4096:1024 [--iterations 2]

Each ``--run SIZE:TILE`` (TILE 0: untiled) is one ``painterly stylize --no-multiscale`` subprocess under
``/usr/bin/time -v`` (its peak RSS), serialised with ``flock /tmp/painterly-bench.lock`` and run with
``nice``; seconds per iteration are from the run's own log (the last iteration: targets excluded).
Prints one markdown table row per run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("content")
    parser.add_argument("style")
    parser.add_argument("--run", action="append", required=True, metavar="SIZE:TILE")
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args()
    painterly = str(Path(sys.executable).with_name("painterly"))
    print("| size | tile | output px | peak RSS | s / iteration | evaluations | notes |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.run:
        size, tile = (int(v) for v in spec.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "log.jsonl"
            cmd = ["flock", "/tmp/painterly-bench.lock", "nice", "/usr/bin/time", "-v", painterly, "stylize", args.content, args.style,
                   "-o", str(Path(tmp) / "out.png"), "--size", str(size), "--no-multiscale", "--iterations", str(args.iterations),
                   "--tile", str(tile), "--log", str(log), "--seed", "0"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
            notes = " ".join(line.split("note: ", 1)[1] for line in proc.stderr.splitlines() if "note: " in line)
            rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
            if proc.returncode != 0 or not rows:
                tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"| {size} | {tile or 'none'} | | {int(rss.group(1)) / 1e6 if rss else 0:.1f} GB | failed: {tail[0]} | | |", flush=True)
                continue
            last = rows[-1]
            per_it = last["seconds"] - rows[-2]["seconds"] if len(rows) > 1 else last["seconds"]
            evals = last["evaluations"] - rows[-2]["evaluations"] if len(rows) > 1 else last["evaluations"]
            print(f"| {size} | {tile or 'none'} | {last['width']}×{last['height']} | {int(rss.group(1)) / 1e6:.1f} GB | {per_it:.0f} | {evals} | {notes} |", flush=True)


if __name__ == "__main__":
    main()
