"""Which process generation this is: threads a store started belong to the process that started them.

A forked child inherits a store's objects but none of its threads. Each
background thread notes the generation it was started in; when the number
differs, the caller is in a child and starts the thread again. Cheaper to
compare on every call than asking the kernel for the pid.
"""

from __future__ import annotations

import os

_forks_seen = [0]
os.register_at_fork(after_in_child=lambda: _forks_seen.__setitem__(0, _forks_seen[0] + 1))


def generation() -> int:
    """Forks this process has been through (a child counts its parent's and one more)."""
    return _forks_seen[0]
