"""SIBYLS queueserver profile, service orchestration and the ``sibyls`` command."""
