"""SQLite's data folder on a tiny filesystem that fills up mid-sale: writes answer 503
``unavailable`` and change nothing, the file stays whole, and sales go on once space is back.

Needs a tmpfs of the test's own (``mount -t tmpfs``, so root or a user namespace).
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokers import missing
from chaos.harness import assert_clean, finish, keep_figures, recovery_after, run_sale, two_services
from stockguard.bootstrap import upgrade_database

pytestmark = pytest.mark.slow
SIZE = "24m"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        missing(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the filesystem."""
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    return filler


def test_a_full_disk_answers_unavailable_keeps_the_file_whole_and_sales_resume(
    tiny_disk: Path, tmp_path: Path
) -> None:
    db = tiny_disk / "stockguard.db"
    url = f"sqlite:///{db}"
    upgrade_database(url)
    with two_services(url, tmp_path) as services:
        sale = run_sale(services, seconds=10)
        sale.at(2.5)
        filler = fill(tiny_disk)
        full = time.time()
        sale.at(6)
        filler.unlink()
        freed = time.time()
        report = finish(sale, url)
    keep_figures("sqlite-full-disk", sale, report, recovery_after(sale, freed))
    assert_clean(report)
    during = [c for c in sale.history if c.answered and full + 0.5 < c.start and c.end < freed]
    assert any(c.status == 503 for c in during), "no write met the full disk"
    assert all(c.status in (409, 410, 503) or (c.status or 500) < 300 for c in during), during
    assert [c for c in sale.history if c.status == 201 and c.start > freed], "sales did not resume"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
