"""The processes a chaos run starts and hurts: ``stockguard serve`` and ``stockguard sweep``.

Each runs in a process group of its own, so ``kill()`` (SIGKILL, as ``kill -9``) takes its
workers with it, and each can start again on the same port and store. ``resources()`` reads a
process group's memory and open files from /proc, for the soak's bounds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0


def stockguard_command() -> list[str]:
    """The installed console script beside this Python, or ``python -m stockguard``."""
    script = shutil.which("stockguard", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "stockguard"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Resources:
    rss_bytes: int  # resident memory of the process and its children
    open_files: int  # file descriptors, sockets included
    processes: int


@dataclass
class Process:
    """One stockguard command, started, killed and started again at will."""

    args: list[str]
    folder: Path
    env: dict[str, str]
    name: str
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    interrupted: bool = False
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.launch()

    def launch(self) -> None:
        """Start the process and return at once."""
        self.starts += 1
        self.interrupted = False
        log = self.folder / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as output:
            self.popen = subprocess.Popen(
                [*stockguard_command(), *self.args],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.folder,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: no handler runs, nothing is flushed or closed."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(STOP_SECONDS)

    def interrupt(self) -> None:
        """SIGINT, as Ctrl+C, without waiting; once (a second one makes uvicorn quit at once)."""
        if self.popen is not None and self.popen.poll() is None and not self.interrupted:
            self.popen.send_signal(signal.SIGINT)
            self.interrupted = True

    def stop(self) -> int | None:
        """SIGINT, as Ctrl+C; SIGKILL when it does not stop in time."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.interrupt()
            try:
                self.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(STOP_SECONDS)
        return self.popen.returncode

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def resources(self) -> Resources:
        if self.popen is None or self.popen.poll() is not None:
            return Resources(0, 0, 0)
        pids = _group(self.popen.pid)
        return Resources(sum(_rss(pid) for pid in pids), sum(_fds(pid) for pid in pids), len(pids))


@dataclass
class Service(Process):
    """``stockguard serve`` on a port of its own."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def wait_healthy(self, seconds: float = STARTUP_SECONDS) -> float:
        """Seconds until /healthz answered."""
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.output()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer in {seconds} s:\n{self.output()[-3000:]}")


def service(
    name: str, db_url: str, folder: Path, tokens: tuple[str, str], *, extra_env: dict[str, str] | None = None
) -> Service:
    """A ``stockguard serve`` (one worker) on ``db_url`` with the given admin and storefront tokens."""
    port = free_port()
    data = folder / name
    data.mkdir(parents=True, exist_ok=True)
    args = ["serve", "--db", db_url, "--port", str(port), "--data-dir", str(data), "--log-level", "warning"]
    env = _clean_env() | {"STOCKGUARD_ADMIN_TOKEN": tokens[0], "STOCKGUARD_STOREFRONT_TOKEN": tokens[1]}
    return Service(args, data, env | (extra_env or {}), name, port=port)


def sweeper(name: str, db_url: str, folder: Path, every: float = 0.2) -> Process:
    """A ``stockguard sweep --every`` of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    return Process(["sweep", "--db", db_url, "--every", str(every)], folder, _clean_env(), name)


def _clean_env() -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKGUARD_", "PROMETHEUS_"))}
    return kept | {"PYTHONUNBUFFERED": "1"}


def _group(leader: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == leader:
                pids.append(int(entry.name))
        except ProcessLookupError:
            continue
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
