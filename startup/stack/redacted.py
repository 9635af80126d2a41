"""Run a server's own entry point with its secrets redacted from everything it prints.

``python -m sibyls.startup.stack.redacted ENV_VAR[,ENV_VAR...] module:function [args...]`` reads each
secret from its environment variable (the server needs it there anyway) and replaces it with
``<redacted>`` on stdout and stderr, so a server that logs its settings (bluesky-httpserver, tiled)
never puts an API key, a password or a signing key into a log file.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

REDACTED = "<redacted>"


class RedactingStream:
    """A text stream wrapper replacing each of ``secrets`` by a placeholder."""

    def __init__(self, stream, secrets: str | Iterable[str]) -> None:
        secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        # Longest first, so a secret containing another is replaced whole.
        self._stream, self._secrets = stream, sorted({s for s in secrets if s}, key=len, reverse=True)

    def write(self, text: str) -> int:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def redacted_command(env_vars: str | Iterable[str], entry_point: str, *args: str) -> list[str]:
    """The command line that runs ``entry_point`` (``module:function``) with the values of ``env_vars``
    redacted from its output."""
    names = [env_vars] if isinstance(env_vars, str) else list(env_vars)
    return [sys.executable, "-m", "sibyls.startup.stack.redacted", ",".join(names), entry_point, *args]


def main(argv: list[str]) -> int:
    env_vars, entry_point, *args = argv
    secrets = [os.environ.get(name, "") for name in env_vars.split(",")]
    # Installed before the server configures logging, so its handlers write through the filter.
    sys.stdout = RedactingStream(sys.stdout, secrets)
    sys.stderr = RedactingStream(sys.stderr, secrets)
    module_name, function_name = entry_point.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    sys.argv = [module_name.rsplit(".", 1)[-1], *args]
    return function()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
