"""Storage and exchange of SIBYLS runs: Tiled, exports (NXcanSAS, CSV, JSON, SPEC, PNG), records ⇄ Bluesky."""

from sibyls.metadata.exchange.tiled import make_tiled_writer

__all__ = ["make_tiled_writer"]
