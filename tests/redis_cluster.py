"""A real Redis Cluster for tests: redis-server processes on free ports, joined by redis-cli.

Three masters, each with one replica, in a temporary folder; no persistence.
``stop()`` kills them all. A master can be killed (``kill_master``) and its
replica promoted by the cluster itself (failover after ``cluster-node-timeout``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NODE_TIMEOUT_MS = 1000


def _free_port() -> int:
    # Cluster nodes also listen on port + 10000: pick ports where both are free.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@dataclass
class LocalCluster:
    folder: Path
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(cls, folder: Path, nodes: int = 6) -> LocalCluster:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli are needed for a cluster")
        cluster = cls(folder)
        for _ in range(nodes):
            port = _free_port()
            (folder / str(port)).mkdir(parents=True)
            cluster._run_node(port)
            cluster.ports.append(port)
        for port in cluster.ports:
            cluster._wait_ping(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in cluster.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        cluster.wait_ok()
        return cluster

    def _run_node(self, port: int) -> None:
        node_dir = self.folder / str(port)
        self.processes[port] = subprocess.Popen(
            [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--save", "", "--appendonly", "no", "--dir", str(node_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _cli(self, port: int, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout

    def _wait_ping(self, port: int) -> None:
        deadline = time.monotonic() + 20
        while "PONG" not in self._cli(port, "ping"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start")
            time.sleep(0.05)

    def live_ports(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def wait_ok(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = [self._cli(port, "cluster", "info") for port in self.live_ports()]
            if all("cluster_state:ok" in state for state in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach state ok")
            time.sleep(0.1)

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        any_port = self.live_ports()[0]
        slot = int(self._cli(any_port, "cluster", "keyslot", key).strip())
        for line in self._cli(any_port, "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(parts[1].split(":")[1].split("@")[0])
        raise LookupError(f"no master serves slot {slot}")

    def kill_master(self, port: int) -> None:
        """kill -9 a master; its replica takes over once the cluster sees it fail.

        First waits until a replica has everything the master had then: a replica
        still in its first sync would never take over (writes made after this may
        still be lost, as with any asynchronous replication)."""
        self._cli(port, "wait", "1", "5000")
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.master_of_slot_owner_alive(port):
                    break
            except LookupError:
                pass
            if time.monotonic() > deadline:
                nodes = self._cli(self.live_ports()[0], "cluster", "nodes")
                raise RuntimeError(f"no replica took over from {port}:\n{nodes}")
            time.sleep(0.1)
        self.wait_ok()
        # Back as a replica of the node that took over, so the next failover has one too.
        self._run_node(port)
        self._wait_ping(port)
        deadline = time.monotonic() + 30
        while "role:slave" not in self._cli(port, "info", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {port} did not come back as a replica")
            time.sleep(0.1)
        self.wait_ok()

    def master_of_slot_owner_alive(self, dead_port: int) -> bool:
        any_port = self.live_ports()[0]
        lines = self._cli(any_port, "cluster", "nodes").splitlines()
        live_masters = [
            line for line in lines if "master" in line.split()[2] and "fail" not in line.split()[2]
        ]
        return len(live_masters) == 3 and all(f":{dead_port}@" not in line for line in live_masters)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@dataclass
class LocalRedis:
    """One redis-server of a test's own, to kill (``kill -9``) and start again: empty, or from
    the last snapshot it took (``snapshot``), as a server restored from an old backup."""

    folder: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, folder: Path) -> LocalRedis:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is needed")
        folder.mkdir(parents=True, exist_ok=True)
        server = cls(folder, _free_port())
        server.restart(from_snapshot=False)
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self, *, from_snapshot: bool) -> None:
        snapshot = self.folder / "dump.rdb"
        if not from_snapshot:
            snapshot.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def snapshot(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "save"], check=True, capture_output=True, timeout=10
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
