"""Ophyd devices for the SIBYLS beamline (ALS 12.3.1), one module per subsystem."""
