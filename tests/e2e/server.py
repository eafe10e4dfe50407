"""The real ``stockguard serve`` in a subprocess, for tests that talk HTTP to it.

``running_server`` starts the installed console script on a free port with its
own data folder, waits until ``/healthz`` answers, and on exit stops it
(SIGINT, then SIGKILL of its process group if it hangs) and checks that its log
holds no traceback and no 5xx. stdout and stderr are kept in files so a test
can read what the server printed and logged.

The helpers below it are the vocabulary of the HTTP tests: unique ids,
creating stock, and asserting the problem+json shape of every refusal. The
servers the tests share are fixtures in ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Re-exported: the HTTP tests start the same console script the chaos tools do.
from stockguard.chaos.services import free_port as free_port
from stockguard.chaos.services import stockguard_command as stockguard_command

STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0
PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}
JSON = dict[str, Any]


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Server:
    """A running ``stockguard serve`` and the two tokens it accepts."""

    url: str
    data_dir: Path
    admin: str
    storefront: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None, **options: Any) -> httpx.Client:
        """A client for this server, closed when the server stops; ``token=None`` sends no token."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        headers |= options.pop("headers", {})
        client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=30.0,
            event_hooks={"response": [_never_5xx]},
            **options,
        )
        self.clients.append(client)
        return client

    def output(self) -> str:
        """What the server printed on stdout (the first-start tokens, nothing else)."""
        return self.stdout_path.read_text(errors="replace")

    def log(self) -> str:
        """The server's log (stderr): uvicorn's lines, the access and decision logs."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """Stop the server gracefully (SIGINT, like Ctrl+C); kill its process group if it hangs."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this server leads: it and its workers
                self.process.wait(STOP_SECONDS)
        return self.process.returncode

    def assert_log_clean(self, allowed_5xx: tuple[int, ...] = ()) -> None:
        """No traceback, no 5xx answer (but those a test provoked), no token anywhere in what the
        server logged."""
        log = self.log()
        assert "Traceback" not in log, log[-5000:]
        five_hundreds = [
            line
            for line in re.findall(r'.*"status": 5\d\d.*', log)
            if not any(f'"status": {status}' in line for status in allowed_5xx)
        ]
        assert not five_hundreds, five_hundreds[:10]
        for token in (self.admin, self.storefront):
            assert token not in log


def _never_5xx(response: httpx.Response) -> None:
    """Every response the tests receive goes through here: the contract allows no 5xx (no store is down)."""
    if response.status_code >= 500:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered {response.status_code}"
        )


def _clean_env(tokens: tuple[str, str] | None, extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("STOCKGUARD_", "PROMETHEUS_"))
    }
    env["PYTHONUNBUFFERED"] = "1"  # stdout is a file: the first-start print must not sit in a buffer
    env["COLUMNS"] = "250"  # Rich must not wrap a token across lines
    if tokens is not None:
        env["STOCKGUARD_ADMIN_TOKEN"], env["STOCKGUARD_STOREFRONT_TOKEN"] = tokens
    return env | extra


def _start(
    data_dir: Path,
    port: int,
    workers: int,
    env: dict[str, str],
    args: tuple[str, ...],
    stdout_path: Path,
    stderr_path: Path,
) -> subprocess.Popen[bytes]:
    command = [
        *stockguard_command(),
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
        *args,
    ]
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            command, stdout=stdout, stderr=stderr, env=env, start_new_session=True, cwd=data_dir
        )


def _wait_healthy(process: subprocess.Popen[bytes], url: str, stderr_path: Path) -> bool:
    """True once /healthz answers; False when the process died (e.g. its port was taken)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the group this server leads: it and its workers
    process.wait()
    raise AssertionError(f"stockguard serve did not answer in {STARTUP_SECONDS}s:\n{stderr_path.read_text()}")


@contextmanager
def running_server(
    data_dir: Path,
    *,
    workers: int = 1,
    tokens: tuple[str, str] | None = None,
    configure_tokens: bool = True,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    allowed_5xx: tuple[int, ...] = (),
) -> Iterator[Server]:
    """Run ``stockguard serve`` until the block ends.

    Tokens come from the environment (fresh random ones unless ``tokens`` is
    given); with ``configure_tokens=False`` none are set and the server's own
    ``tokens.json`` (created on its first start) is read instead. On the way
    out, the server must have stopped cleanly and logged no traceback, no 5xx
    (but ``allowed_5xx``, for a test that takes a store away) and no token.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if configure_tokens:
        tokens = tokens or (new_token(), new_token())
    environment = _clean_env(tokens if configure_tokens else None, env or {})
    for _attempt in range(3):
        port = free_port()
        run = uuid.uuid4().hex[:8]  # one pair of files per start: a restart must not read its predecessor's
        stdout_path, stderr_path = data_dir / f"server-{run}.stdout", data_dir / f"server-{run}.stderr"
        url = f"http://127.0.0.1:{port}"
        process = _start(data_dir, port, workers, environment, args, stdout_path, stderr_path)
        if _wait_healthy(process, url, stderr_path):
            break
        if "address already in use" not in stderr_path.read_text().lower():
            raise AssertionError(
                f"stockguard serve exited with {process.returncode}:\n{stderr_path.read_text()}"
            )
    else:
        raise AssertionError("no free port for stockguard serve after 3 attempts")
    if tokens is None:
        stored = json.loads((data_dir / "tokens.json").read_text())
        tokens = (stored["admin"], stored["storefront"])
    server = Server(url, data_dir, tokens[0], tokens[1], process, stdout_path, stderr_path)
    try:
        yield server
    finally:
        code = server.stop()
    server.assert_log_clean(allowed_5xx)
    assert code == 0, f"stockguard serve exited with {code}:\n{server.log()[-3000:]}"


# -- the vocabulary of the HTTP tests


def uid(prefix: str) -> str:
    """A fresh identifier, so tests sharing a server never meet."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def body(response: httpx.Response, status: int) -> JSON:
    """The JSON body of a response that must have ``status``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    document: JSON = response.json()
    return document


def assert_problem(response: httpx.Response, status: int, code: str) -> JSON:
    """A problem+json refusal with the contract's fields, status and code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, response.headers
    problem: JSON = response.json()
    assert set(problem) >= PROBLEM_FIELDS, problem
    assert problem["status"] == status
    assert problem["code"] == code
    for text in ("type", "title", "detail"):
        assert isinstance(problem[text], str), problem
        assert problem[text], problem
    if code == "invalid":
        errors = problem.get("errors")
        assert isinstance(errors, list), problem
        assert errors, problem
        assert all(isinstance(error, str) and error for error in errors), problem
    return problem


def make_item(admin: httpx.Client, units: int, sku: str | None = None, *, safety: int = 0) -> str:
    """A new item with ``units`` on hand in the main warehouse; returns its SKU."""
    sku = sku or uid("sku")
    body(admin.put(f"/v1/items/{sku}", json={"name": f"item {sku}", "safety": safety}), 201)
    if units:
        body(admin.post(f"/v1/items/{sku}/receipts", json={"quantity": units}), 200)
    return sku


def make_listing(
    admin: httpx.Client,
    units: int,
    deduction: str = "order",
    *,
    listing_id: str | None = None,
    **terms: Any,
) -> str:
    """A new listing of one new item with ``units`` on hand; returns the listing id."""
    sku = make_item(admin, units)
    listing_id = listing_id or uid("listing")
    document = {
        "title": f"listing {listing_id}",
        "components": [{"sku": sku, "quantity": 1}],
        "deduction": deduction,
        **terms,
    }
    body(admin.put(f"/v1/listings/{listing_id}", json=document), 201)
    return listing_id


def order_body(
    listing_id: str, quantity: int = 1, *, order_id: str | None = None, buyer_id: str | None = None
) -> JSON:
    return {
        "order_id": order_id or uid("order"),
        "buyer_id": buyer_id or uid("buyer"),
        "lines": [{"listing_id": listing_id, "quantity": quantity}],
    }


def sellable(client: httpx.Client, listing_id: str) -> int:
    value: int = body(client.get(f"/v1/listings/{listing_id}"), 200)["sellable"]
    return value


def metric_samples(text: str, name: str) -> dict[str, float]:
    """Samples of one metric from the Prometheus text format, keyed by their label text."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
        if match:
            samples[match.group(1) or ""] = float(match.group(2))
    return samples
