"""The error a beamline user sees when a stored run, record or data file cannot be read or converted."""

from __future__ import annotations


class ExchangeError(RuntimeError):
    """A run, record or data file cannot be exported or converted; the message says why."""
