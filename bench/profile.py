"""Profiling the services during a benchmark run with py-spy, and reading what it recorded.

`python -m bench.run --profile DIR` attaches `py-spy record` to every service process of every pipeline
run and writes one folded-stack file per process. By default it samples only the thread holding the GIL
(where the CPU goes in Python: what counts on the CPU-bound loopback link); with `--profile-idle` it samples
waiting threads too (where the wall-clock time goes: what counts on the WAN-like link).
`python -m bench.profile FILE...` prints where the samples fall: the functions that include the most samples,
and the lines that hold the most on their own.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

_PATH = re.compile(r" \((?:[^()]*/(?:site-packages|lib/python3\.\d+)/|[^()]*/main/)?")


class Recorder:
    """py-spy attached to running processes; `stop()` makes each write its file."""

    def __init__(self, directory: Path, rate: int = 100, idle: bool = False):
        self.directory = directory
        self.rate = rate
        self.idle = idle
        self.processes: list[subprocess.Popen] = []
        self.binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        directory.mkdir(parents=True, exist_ok=True)

    def attach(self, pid: int, name: str) -> None:
        if not Path(self.binary).exists():
            raise RuntimeError("py-spy is not installed: pip install -e '.[dev]'")
        output = self.directory / f"{name}.folded"
        self.processes.append(
            subprocess.Popen(
                [
                    self.binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(self.rate),
                    "--format",
                    "raw",
                    # Busy view: only the thread holding the GIL, i.e. Python actually running. Without
                    # --gil, threads blocked in a socket read counted as busy and hid the real costs.
                    *(["--idle"] if self.idle else ["--gil"]),
                    "--nonblocking",
                    "--output",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def summarize(path: Path, top: int = 25, skip_idle: bool = False) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_PATH.sub(" (", frame) for frame in stack.split(";")]
        if skip_idle and _idle(frames[-1]):
            continue
        n = int(count)
        total += n
        for frame in dict.fromkeys(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples" + (" (idle waits left out)" if skip_idle else ""), "  inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame[:160]}" for frame, n in inclusive.most_common(top)]
    lines.append("  own:")
    lines += [f"  {100 * n / total:5.1f}%  {frame[:160]}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def _idle(frame: str) -> bool:
    return any(
        word in frame
        for word in ("wait (threading", "poll (", "select (", "_worker (concurrent", "sleep", "readinto (socket")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description="Summarize py-spy folded stacks.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument(
        "--busy", action="store_true", help="leave out samples of threads waiting (poll, select, sleep, recv)"
    )
    args = p.parse_args(argv)
    for path in args.files:
        print(summarize(path, args.top, args.busy))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
