"""Summarise py-spy's collapsed stacks (`BENCH_PYSPY=dir python bench/run.py ...`): where a worker spent its time.

    python -m bench._profile bench-profiles/bridge-*.txt [--top 25] [--filter bridge/]

Prints the functions with the most samples on the stack (inclusive) and at the top of it (self), as
`file:function`, so a hot spot can be named precisely.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/wt/bench/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match['func']}"


def summarise(paths: list[Path], top: int, only: str | None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_name(f) for f in stack.split(";")[1:]]  # the first frame is the process/thread
            total += count
            for name in set(frames):
                inclusive[name] += count
            if frames:
                own[frames[-1]] += count
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"\n{title}:")
        shown = 0
        for name, count in counter.most_common():
            if only and only not in name:
                continue
            lines.append(f"  {100 * count / max(total, 1):5.1f}%  {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._profile")
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default=None, help="only names containing this")
    args = parser.parse_args()
    print(summarise(args.paths, args.top, args.filter))


if __name__ == "__main__":
    main()
