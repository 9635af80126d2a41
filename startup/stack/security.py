"""The stack's secrets and logins: 0MQ CURVE keys, HTTP demo accounts and roles, the API key.

Each secret is generated once into a file of mode 0600 under ``<var>``
(:func:`sibyls.startup.stack.private_files.write_private`) and never printed or logged. The key
files (:func:`key_files`) hold the key alone, without a newline, as the clients read them.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from sibyls.startup.stack.private_files import is_private, normalize_key_file, write_key, write_private

if TYPE_CHECKING:
    from sibyls.startup.stack.state import StackState

#: The HTTP server's login provider (``POST /api/auth/provider/<name>/token``) for the demo accounts.
HTTP_AUTH_PROVIDER = "demo"
#: Demo accounts of the HTTP server and their httpserver roles: beamline staff, two users of two
#: projects (see the demo's projects file), an observer.
HTTP_ACCOUNTS: dict[str, list[str]] = {
    "staff": ["admin", "expert"],
    "user": ["user"],
    "user2": ["user"],
    "observer": ["observer"],
}
#: Roles whose people belong to every project (beamline staff).
STAFF_ROLES = ("admin", "expert")
#: The names 0MQ clients claim by default (the ``qserver`` CLI, bluesky-queueserver-api,
#: bluesky-widgets' queue-monitor). Whoever holds the manager's 0MQ public key is an operator: the
#: key alone lets them pause, abort, clear the queue and destroy the environment, and a 0MQ client
#: names its own user. The queue gate therefore treats these names as staff (every project); the
#: project rule is enforced for people, who come through the HTTP server under their login name.
ZMQ_OPERATOR_NAMES = ("qserver-cli", "Queue Server API User", "GUI Client")


def staff_usernames() -> list[str]:
    """Names the RE Manager's queue gate lets queue for every project: staff logins, 0MQ operators."""
    staff = [name for name, roles in HTTP_ACCOUNTS.items() if set(roles) & set(STAFF_ROLES)]
    return [*staff, *ZMQ_OPERATOR_NAMES]


def is_staff(roles) -> bool:
    """True for a login holding a staff role (it sees every project's data)."""
    return bool(set(roles or ()) & set(STAFF_ROLES))


#: Scopes that could change what the beamline runs outside the queue's checks, or stop it: staff only
#: (the ``expert`` role; ``admin`` is given ``write:manager:stop``).
STAFF_ONLY_SCOPES = (
    "write:scripts",
    "write:permissions",
    "write:config",
    "write:lock",
    "write:manager:stop",
    "write:testing",
)
#: Controls of the running plan and the worker, and the history: staff only. Users queue plans, start
#: the queue and edit or remove their own items; pausing, aborting or stopping someone's measurement,
#: opening/closing the RE environment and clearing the history are for beamline staff.
STAFF_CONTROL_SCOPES = ("write:plan:control", "write:manager:control", "write:history:edit")
#: What only staff read: the manager's console prints every queue item (other projects' samples).
STAFF_READ_SCOPES = ("read:console",)
NOT_FOR_NON_STAFF = (*STAFF_ONLY_SCOPES, *STAFF_CONTROL_SCOPES, *STAFF_READ_SCOPES)
#: Roles that must never hold a staff-only scope (httpserver's default single-user key role had them all).
NON_STAFF_ROLES = ("user", "advanced", "observer", "unauthenticated_single_user", "unauthenticated_public")
#: Roles that may edit, move or remove any person's queue item; every other role only its own.
QUEUE_EDITOR_ROLES = ("expert",)


def manager_config_file(var_dir: Path) -> Path:
    """RE Manager's config file: its 0MQ CURVE private key (the key's only copy)."""
    return var_dir / "re_manager.yml"


def zmq_key_files(var_dir: Path) -> Path:
    """The manager's 0MQ key pair, generated once: public key file (the manager's config has the private)."""
    import yaml
    from bluesky_queueserver import generate_zmq_keys, generate_zmq_public_key

    public_path, config_path = var_dir / "zmq_public_key", manager_config_file(var_dir)
    try:
        private = yaml.safe_load(config_path.read_text())["network"]["zmq_private_key"]
        if (
            is_private(public_path)
            and is_private(config_path)
            and public_path.read_text().strip() == generate_zmq_public_key(private)
        ):
            return public_path
    except (OSError, TypeError, KeyError, ValueError, yaml.YAMLError):
        pass
    public, private = generate_zmq_keys()
    while "$" in private:  # the manager expands $NAME in its config files: keep the key literal
        public, private = generate_zmq_keys()
    header = "# RE Manager settings written by 'sibyls up': the 0MQ CURVE private key. Keep it private.\n"
    write_private(config_path, header + yaml.safe_dump({"network": {"zmq_private_key": private}}))
    write_key(public_path, public)
    return public_path


def key_files(var_dir: Path) -> list[Path]:
    """The files that hold one key each, for clients: the 0MQ public key, the HTTP and Tiled API keys."""
    return [var_dir / "zmq_public_key", var_dir / "http_api_key", var_dir / "tiled" / "tiled_api_key"]


def rewrite_old_key_files(var_dir: Path) -> list[Path]:
    """Key files an older ``sibyls up`` wrote with a trailing newline, rewritten without it (same key,
    mode 0600): those a client reads verbatim failed (``Illegal header value b'ApiKey …\\n'``)."""
    return [path for path in key_files(var_dir) if normalize_key_file(path)]


def http_users_file(var_dir: Path) -> Path:
    """Passwords of the HTTP demo accounts, generated once into a 0600 file."""
    import yaml

    path = var_dir / "http_users.yaml"
    try:
        passwords = yaml.safe_load(path.read_text())
        if is_private(path) and all(isinstance(passwords.get(name), str) for name in HTTP_ACCOUNTS):
            return path
    except (OSError, AttributeError, yaml.YAMLError):
        pass
    passwords = {name: secrets.token_urlsafe(18) for name in HTTP_ACCOUNTS}
    roles = ", ".join(f"{name}: {'+'.join(r)}" for name, r in HTTP_ACCOUNTS.items())
    header = (
        f"# Demo accounts of the SIBYLS HTTP server (login provider '{HTTP_AUTH_PROVIDER}'; roles {roles}).\n"
        "# Written once by 'sibyls up'; delete this file to get new passwords at the next 'up'.\n"
    )
    write_private(path, header + yaml.safe_dump(passwords))
    return path


def password_env(username: str) -> str:
    return f"SIBYLS_HTTP_PASSWORD_{username.upper()}"


def http_config(state: StackState) -> dict:
    """bluesky-httpserver's configuration: demo logins, roles and scopes, its session database.

    No secret is in it: passwords are ``${SIBYLS_HTTP_PASSWORD_...}`` references the server expands
    from its environment.
    """
    return {
        "authentication": {
            "providers": [
                {
                    "provider": HTTP_AUTH_PROVIDER,
                    "authenticator": "bluesky_httpserver.authenticators:DictionaryAuthenticator",
                    "args": {
                        "users_to_passwords": {name: f"${{{password_env(name)}}}" for name in HTTP_ACCOUNTS}
                    },
                }
            ],
            "allow_anonymous_access": False,
        },
        "api_access": {
            "policy": "bluesky_httpserver.authorization:DictionaryAPIAccessControl",
            "args": {
                "roles": {
                    "admin": {"scopes_add": ["write:manager:stop"]},
                    **{
                        role: {
                            "scopes_remove": [*STAFF_ONLY_SCOPES, *STAFF_CONTROL_SCOPES, *STAFF_READ_SCOPES]
                        }
                        for role in NON_STAFF_ROLES
                    },
                },
                "users": {name: {"roles": roles} for name, roles in HTTP_ACCOUNTS.items()},
            },
        },
        "database": {"uri": f"sqlite:///{Path(state.var_dir) / 'http' / 'httpserver.sqlite'}"},
    }


def http_login(state: StackState, username: str, password: str | None = None, timeout: float = 10.0) -> str:
    """An access token of an HTTP demo account (``Authorization: Bearer <token>``; valid 15 minutes).

    The password is the account's own from ``http_users.yaml`` unless given; raises
    ``httpx.HTTPStatusError`` (401) for a wrong one.
    """
    import httpx

    form = {"username": username, "password": state.http_password(username) if password is None else password}
    response = httpx.post(state.http_token_url, data=form, timeout=timeout)
    response.raise_for_status()
    return response.json()["access_token"]
