"""`stockguard soak`, briefly: two service processes, one killed and started again, resources
sampled, and a clean verdict from the checker, as JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import empty_postgres_url
from stockguard.chaos.services import stockguard_command

pytestmark = pytest.mark.slow


def test_a_short_soak_with_a_killed_process_keeps_every_promise_and_reports_its_bounds(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            *stockguard_command(),
            "soak",
            "--db",
            empty_postgres_url(),
            "--minutes",
            "0.4",
            "--kill-every",
            "8",
            "--folder",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    report = result["report"]
    assert report["clean"], report
    assert (report["lost_orders"], report["oversold_units"]) == (0, 0)
    assert report["acknowledged_orders"] > 100
    assert result["recoveries"], "no process was killed"
    assert all(r["selling_after"] is not None for r in result["recoveries"])
    assert len(result["samples"]) >= 2
    bounds = result["bounds"]
    assert bounds["db_connections_max"] > 0
    assert bounds["open_files_max"] > 0
    assert (tmp_path / "history.jsonl").stat().st_size > 0
    assert json.loads((tmp_path / "soak.json").read_text())["report"]["clean"]
