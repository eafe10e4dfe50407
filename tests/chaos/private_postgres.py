"""A PostgreSQL server of a test's own (initdb in a temporary folder, its own port), to stop and
start mid-sale without touching the machine's server that every other test uses.

Needs the server binaries (Debian's postgresql package: /usr/lib/postgresql/<version>/bin).
Run as root, the server runs as the ``postgres`` user, as PostgreSQL requires.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stockguard.chaos.services import free_port


def server_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    sockets: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PrivatePostgres:
        """A new server in a folder of its own under the system's temporary folder (the
        ``postgres`` user must reach it, which it cannot inside pytest's owner-only folders)."""
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed")
        folder = Path(tempfile.mkdtemp(prefix="stockguard-pg-"))
        server = cls(binaries, folder / "data", folder / "sockets", free_port())
        server.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (folder, server.sockets):
                shutil.chown(path, owner.pw_uid, owner.pw_gid)
        server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres", "--no-sync")
        server.start()
        return server

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self) -> float:
        """Start the server; seconds until it accepted connections."""
        began = time.monotonic()
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start"
        )
        return time.monotonic() - began

    def remove(self) -> None:
        """Stop the server, as a power cut would, and delete its files."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.data.parent, ignore_errors=True)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean restart's stop; ``immediate``: as if the machine lost power."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
