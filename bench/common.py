"""Small shared pieces: the event loop runner, /proc readings, percentiles."""

from __future__ import annotations

import asyncio
import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def run(coro):
    """Run ``coro`` on uvloop when it is importable, else on asyncio's loop."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(coro)
    if hasattr(uvloop, "run"):
        return uvloop.run(coro)
    uvloop.install()
    return asyncio.run(coro)


async def until_stopped() -> None:
    """Wait for SIGTERM or SIGINT, or for the parent process to go away (checked once a second)."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    def watch_parent() -> None:
        if os.getppid() != parent:
            stop.set()
        else:
            loop.call_later(1.0, watch_parent)

    loop.call_later(1.0, watch_parent)
    await stop.wait()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (a service with KAMELEOON_WORKERS > 1 forks workers)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pid]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                text = f.read()
        except OSError:
            continue
        ppid = int(text[text.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo and len(tree) < 256:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and its living descendants."""
    values = [cpu_seconds(p) for p in process_tree(pid)]
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def tree_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM summed over ``pid`` and its living descendants, kB."""
    out: dict[str, int] = {}
    for p in process_tree(pid):
        for key, value in memory_kb(p).items():
            out[key] = out.get(key, 0) + value
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), seconds; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB; {} when unreadable."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of already sorted values, nearest-rank; None when empty."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


BURN = (
    "import time\n"
    "t0 = time.perf_counter(); c0 = time.process_time()\n"
    "while time.perf_counter() - t0 < {seconds}: pass\n"
    "print((time.process_time() - c0) / (time.perf_counter() - t0))\n"
)


def cpu_capacity(seconds: float = 1.0, procs: int | None = None) -> float | None:
    """Cores the machine actually gives now: one CPU-burning process per CPU, their shares summed.

    On a shared or throttled host this is well below os.cpu_count(); every number of the run
    moves with it.
    """
    import subprocess
    import sys

    procs = procs or os.cpu_count() or 1
    code = BURN.format(seconds=seconds)
    burners = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    total = 0.0
    try:
        for burner in burners:
            out, _ = burner.communicate(timeout=seconds + 20)
            total += float(out.strip() or 0)
    except (subprocess.TimeoutExpired, ValueError):
        for burner in burners:
            if burner.poll() is None:
                burner.kill()
        return None
    return round(total, 2)
