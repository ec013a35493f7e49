"""Summarise a py-spy `--format raw` profile (collapsed stacks) as text.

    .venv/bin/python bench/profile_summary.py bench/results/profile-pixelport-small.txt

Prints, per thread group (event loop, image workers, others), the share of samples and the
functions with the most inclusive and self time, so a profile can be read without a browser.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path


def group(first: str) -> str:
    """Thread group of a stack from its first frame (py-spy --threads puts the thread there)."""
    if "pixelport-work" in first:
        return "image workers (pixelport-work-*)"
    if "MainThread" in first:
        return "event loop (MainThread)"
    return "other threads"


def frame_name(frame: str) -> str:
    """`function (file.py:line)` -> `function (file.py)`, shortened."""
    frame = re.sub(r":\d+\)$", ")", frame)
    frame = re.sub(r"\(/.*?/(site-packages|lib/python3\.\d+)/", "(", frame)
    return re.sub(r"\(/work/main/", "(", frame)


def summarise(path: Path, top: int) -> str:
    """The text report."""
    groups: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    self_time: dict[str, Counter[str]] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[0].startswith("process ") and len(frames) > 1:
            frames = frames[1:]  # py-spy --subprocesses: the process, then the thread
        name = group(frames[0])
        total += count
        groups[name] += count
        frames = [frame_name(f) for f in frames[1:]] or ["(thread)"]
        for frame in set(frames):
            inclusive.setdefault(name, Counter())[frame] += count
        self_time.setdefault(name, Counter())[frames[-1]] += count
    out = [f"{path.name}: {total} samples"]
    for name, count in groups.most_common():
        out.append(f"\n== {name}: {100 * count / total:.1f}% of samples")
        out.append("  inclusive:")
        out += [f"    {100 * c / count:5.1f}%  {f}" for f, c in
                inclusive[name].most_common(top)]
        out.append("  self:")
        out += [f"    {100 * c / count:5.1f}%  {f}" for f, c in self_time[name].most_common(top)]
    return "\n".join(out)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
