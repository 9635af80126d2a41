"""Run a server's own entry point with a secret redacted from everything it prints.

``python -m sibyls.startup.redacted ENV_VAR module:function [args...]`` reads the secret from
``ENV_VAR`` (the server needs it there anyway) and replaces it with ``<redacted-api-key>`` on
stdout and stderr, so a server that logs its settings (bluesky-httpserver, tiled) never puts the
API key into a log file.
"""

from __future__ import annotations

import importlib
import os
import sys

REDACTED = "<redacted-api-key>"


class RedactingStream:
    """A text stream wrapper replacing ``secret`` by a placeholder."""

    def __init__(self, stream, secret: str) -> None:
        self._stream, self._secret = stream, secret

    def write(self, text: str) -> int:
        if self._secret:
            text = text.replace(self._secret, REDACTED)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def redacted_command(env_var: str, entry_point: str, *args: str) -> list[str]:
    """The command line that runs ``entry_point`` (``module:function``) with ``$env_var`` redacted."""
    return [sys.executable, "-m", "sibyls.startup.redacted", env_var, entry_point, *args]


def main(argv: list[str]) -> int:
    env_var, entry_point, *args = argv
    # Installed before the server configures logging, so its handlers write through the filter.
    sys.stdout = RedactingStream(sys.stdout, os.environ.get(env_var, ""))
    sys.stderr = RedactingStream(sys.stderr, os.environ.get(env_var, ""))
    module_name, function_name = entry_point.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    sys.argv = [module_name.rsplit(".", 1)[-1], *args]
    return function()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
