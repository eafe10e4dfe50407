"""Proof under faults and load: a driver that records every call (``history``), a checker of the
promises against that history and the store (``checker``), and the service processes to hurt."""
