"""The Tiled catalog on PostgreSQL: ``sibyls up --tiled-db postgresql://...`` and a run through the queue.

Against a real PostgreSQL server (default ``postgresql://postgres@127.0.0.1:5432``, trust auth; another
with ``SIBYLS_TEST_POSTGRES``): the test creates its own uniquely named database, runs the whole stack
with its Tiled catalog (and event tables) there, queues a ``saxs_exposure``, reads the run back with the
tiled client and checks the rows really are in PostgreSQL; the database is dropped in a ``finally``
(no other database is touched). Without a reachable server the test is skipped, unless
``SIBYLS_REQUIRE_POSTGRES=1`` (CI sets it): then it fails.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from bluesky_queueserver_api import BPlan
from stack_helpers import wait_until_idle

from sibyls.startup.tiled_service import (
    CATALOG_PLACEHOLDER,
    check_catalog_uri,
    masked_uri,
    tiled_command,
)

SERVER = os.environ.get("SIBYLS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
#: Trust auth ignores it; the test checks it is never shown (status, logs, process list).
PASSWORD = "pw" + uuid.uuid4().hex[:12]
PROJECT = "PG_TEST"


def _with_password(server: str, database: str) -> str:
    scheme, rest = server.split("://", 1)
    credentials, host = rest.rsplit("@", 1) if "@" in rest else ("postgres", rest)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:{PASSWORD}@{host}/{database}"


async def _admin(sql: str | None = None, database: str = "postgres", fetch: str | None = None):
    import asyncpg

    connection = await asyncpg.connect(f"{SERVER}/{database}", timeout=3)
    try:
        if sql:
            await connection.execute(sql)
        if fetch:
            return await connection.fetch(fetch)
    finally:
        await connection.close()


def _reachable() -> str | None:
    """None if the PostgreSQL server answers, else why not."""
    try:
        asyncio.run(_admin())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture
def pg_database():
    """A fresh database on the PostgreSQL server, named for this test alone, dropped afterwards."""
    why = _reachable()
    if why:
        message = f"no PostgreSQL server reachable at {masked_uri(SERVER)} ({why})"
        if os.environ.get("SIBYLS_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + "; SIBYLS_REQUIRE_POSTGRES=1 requires one")
        pytest.skip(message + "; set SIBYLS_TEST_POSTGRES to another server")
    name = f"sibyls_test_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        # FORCE: a server that did not end cleanly may still hold connections to this database.
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_catalog_uris_accepted_and_masked():
    assert check_catalog_uri("postgresql://u:pw@db:5432/tiled") == "postgresql://u:pw@db:5432/tiled"
    assert check_catalog_uri("postgresql+asyncpg://u@db/tiled")
    assert check_catalog_uri("sqlite:////var/tiled/catalog.db")
    with pytest.raises(ValueError, match=r"mysql://u:\*\*\*@db/x"):
        check_catalog_uri("mysql://u:topsecret@db/x")
    assert masked_uri("postgresql://u:topsecret@db/tiled") == "postgresql://u:***@db/tiled"


def test_postgres_uri_never_on_the_command_line(tmp_path):
    command = tiled_command(8000, tmp_path, "postgresql://u:topsecret@db/tiled")
    assert not any("topsecret" in part or "db/tiled" in part for part in command)
    assert CATALOG_PLACEHOLDER in command
    sqlite = tiled_command(8000, tmp_path, None)
    assert f"sqlite:///{tmp_path.resolve() / 'catalog.db'}" in sqlite
    assert f"sqlite:///{tmp_path.resolve() / 'tables.db'}" in sqlite


def _wait_for_run(client, uid: str, timeout: float = 120.0):
    """The run once the Tiled writer (off the RunEngine thread) has written its stop document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if uid in client and "stop" in client[uid].metadata:
            return client[uid]
        time.sleep(0.3)
    raise TimeoutError(f"run {uid} did not reach Tiled within {timeout} s")


def test_stack_on_postgres_stores_a_queued_run(tmp_path, pg_database):
    from tiled.client import from_uri

    from sibyls.startup.stack import describe, down, manager_api, up
    from sibyls.startup.stack.starters import tiled_db_file

    uri = _with_password(SERVER, pg_database)
    var_dir = tmp_path / "stack"
    state = up(var_dir, ioc_prefix="PGT:", time_scale=50.0, binning=8, tiled_db=uri)
    try:
        status = describe(state)
        assert f"PostgreSQL {masked_uri(uri)}" in status and PASSWORD not in status
        assert (tiled_db_file(var_dir).stat().st_mode & 0o777) == 0o600

        api = manager_api(state, timeout=10)
        try:
            added = api.item_add(BPlan("saxs_exposure", "Lyz_pg", PROJECT, exposure_time=0.1, num_frames=3))
            assert added["success"], added["msg"]
            api.queue_start()
            wait_until_idle(api)
            (entry,) = api.history_get()["items"][-1:]
        finally:
            api.close()
        assert entry["result"]["exit_status"] == "completed", entry["result"]["msg"]
        (uid,) = entry["result"]["run_uids"]

        key = Path(state.tiled_api_key_file).read_text().strip()
        client = from_uri(state.tiled_url, api_key=key)
        run = _wait_for_run(client, uid)
        assert run.metadata["start"]["sample_code"] == "Lyz_pg"
        assert run.metadata["stop"]["exit_status"] == "success"
        table = run["primary"].base["internal"].read()
        assert list(table["seq_num"]) == [1, 2, 3]
        assert np.all(table["i0_counts"] > 0)
        frames = run["primary"]["pilatus_image"].read()
        assert frames.shape[0] == 3 and frames.any()

        # The run lives in PostgreSQL: its catalog node and its event table (not an SQLite file).
        nodes = asyncio.run(_admin(database=pg_database, fetch="SELECT key FROM nodes"))
        assert uid in {row["key"] for row in nodes}
        tables = asyncio.run(
            _admin(
                database=pg_database,
                fetch="SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'table_%'",
            )
        )
        assert tables, "the event table is not in PostgreSQL"
        assert not (var_dir / "tiled" / "catalog.db").exists()
        assert not (var_dir / "tiled" / "tables.db").exists()

        for log in (var_dir / "logs").glob("*.log"):
            assert PASSWORD not in log.read_text(errors="replace"), log.name
        import psutil

        tiled = psutil.Process(state.pids["tiled"])
        for process in (tiled, *tiled.children(recursive=True)):
            assert PASSWORD not in " ".join(process.cmdline())
    finally:
        down(var_dir)
