"""Kept for old imports: the atomic writer lives in :mod:`sibyls.metadata.atomic`."""

from sibyls.metadata.atomic import atomic_path
from sibyls.metadata.errors import ExchangeError

__all__ = ["ExchangeError", "atomic_path"]
