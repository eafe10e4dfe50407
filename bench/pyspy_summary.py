"""Where the server's time went: a summary of py-spy's raw (collapsed) stacks.

``bench/http_load.py --profile DIR`` records every phase with
``py-spy record --gil --format raw``; this prints, per file, the share of
samples per thread (event loop, writer, pool threads, sweeper), per owner
and per owning function (a sample belongs to the innermost frame that is not
the standard library: ``threading.Condition()`` made by ``Writer.submit``
counts for ``Writer.submit``), and the functions with the most samples,
inclusive (anywhere on the stack) and self (the leaf)::

    .venv/bin/python bench/pyspy_summary.py DIR/run1-selling.txt [--top 25] [--thread loop]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# A thread is recognised by a frame its stacks always hold.
THREADS = (
    ("writer", "Writer._loop"),
    ("sweeper", "Sweeper._run"),
    ("pool", "WorkerThread.run"),  # anyio's thread pool: sync routes and dependencies
    ("pool", "_worker (concurrent/futures/thread.py"),
)
STDLIB_DIRS = {"asyncio", "concurrent", "json", "collections", "logging", "email", "http", "urllib", "re"}
THIRD_PARTY = {
    "fastapi": "FastAPI",
    "starlette": "Starlette",
    "uvicorn": "uvicorn",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "sqlalchemy": "SQLAlchemy",
    "prometheus_client": "prometheus_client",
    "anyio": "anyio",
    "trace": "opentelemetry",  # py-spy shortens opentelemetry/trace/__init__.py
    "metrics": "opentelemetry",
    "typer": "typer",
}
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def thread_of(stack: str) -> str:
    for name, marker in THREADS:
        if marker in stack:
            return name
    return "loop"  # the main thread: uvicorn's event loop


def function_of(frame: str) -> str:
    """``func (path/file.py:123)`` without the line, so a function's lines add up."""
    match = _FRAME.match(frame)
    return f"{match['function']} ({match['file']})" if match else frame


def owner_of(function: str) -> str | None:
    """Who a frame belongs to; None for the standard library (its cost goes to the caller)."""
    file = function.rsplit(" (", 1)[-1].rstrip(")")
    if file.startswith("<"):
        return None  # <frozen os>, <string> (dataclass __init__), ...
    top_dir = file.split("/", 1)[0] if "/" in file else None
    if top_dir is None:
        # stockguard.api modules show as deps.py, middleware.py, ...; the stdlib as threading.py, ...
        return "stockguard.api" if file in STOCKGUARD_API_FILES else None
    if top_dir in STDLIB_DIRS:
        return None
    if top_dir == "stockguard":
        return "stockguard." + file.split("/")[1].removesuffix(".py")
    if top_dir == "routes":
        return "stockguard.api"
    return THIRD_PARTY.get(top_dir, top_dir)


STOCKGUARD_API_FILES = {
    "app.py",
    "auth.py",
    "deps.py",
    "metrics.py",
    "middleware.py",
    "problems.py",
    "schemas.py",
    "server.py",
    "settings.py",
    "sweeper.py",
}


def summarize(path: Path, top: int, only: str | None) -> str:
    per_thread: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    owning: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        stack, count = match["stack"], int(match["count"])
        thread = thread_of(stack)
        per_thread[thread] += count
        if only is not None and thread != only:
            continue
        total += count
        frames = [function_of(frame) for frame in stack.split(";")]
        for function in set(frames):
            inclusive[function] += count
        leaf[frames[-1]] += count
        owner, function = "stdlib", frames[-1]
        for frame in reversed(frames):
            found = owner_of(frame)
            if found is not None:
                owner, function = found, frame
                break
        owners[owner] += count
        owning[function] += count
    everything = sum(per_thread.values())
    out = [f"{path}: {everything:,} samples"]
    out += [f"  {name:8} {n / everything:6.1%}" for name, n in per_thread.most_common()]
    scope = f"thread {only}" if only else "all threads"
    out.append(f"by owner ({scope}; the standard library counts for its caller):")
    out += [f"  {n / total:6.1%}  {owner}" for owner, n in owners.most_common()]
    out.append(f"by owning function ({scope}):")
    out += [f"  {n / total:6.1%}  {function}" for function, n in owning.most_common(top)]
    out.append(f"inclusive ({scope}, {total:,} samples):")
    out += [f"  {n / total:6.1%}  {function}" for function, n in inclusive.most_common(top)]
    out.append(f"self ({scope}):")
    out += [f"  {n / total:6.1%}  {function}" for function, n in leaf.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", choices=["loop", "writer", "pool", "sweeper"], default=None)
    args = parser.parse_args()
    for path in args.files:
        print(summarize(path, args.top, args.thread))
        print()


if __name__ == "__main__":
    main()
