"""An earlier revision's module, for a later one that builds on the text of its SQL functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VERSIONS = Path(__file__).with_name("versions")


def revision_module(name: str) -> ModuleType:
    """The revision module ``versions/<name>.py`` (e.g. ``"0007_change_events_outbox"``)."""
    spec = importlib.util.spec_from_file_location(name, VERSIONS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise LookupError(f"no revision {name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
