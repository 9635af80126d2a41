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

from sibyls.startup.config import ProfileConfig
from sibyls.startup.stack.tiled import (
    CATALOG_PLACEHOLDER,
    check_catalog_uri,
    masked_uri,
    tiled_command,
)

pytestmark = pytest.mark.slow

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


def test_the_stack_remembers_its_catalog_database_privately(tmp_path):
    from sibyls.startup.stack.starters import describe_tiled_db, set_tiled_db, tiled_db, tiled_db_file

    uri = "postgresql://beamline:topsecret@db.example:5433/sibyls"
    set_tiled_db(tmp_path, uri)
    assert tiled_db(tmp_path) == uri
    assert (tiled_db_file(tmp_path).stat().st_mode & 0o777) == 0o600
    assert describe_tiled_db(tmp_path) == "PostgreSQL postgresql://beamline:***@db.example:5433/sibyls"
    set_tiled_db(tmp_path, None)  # a later `sibyls up` without one: back to SQLite
    assert tiled_db(tmp_path) is None
    assert describe_tiled_db(tmp_path) == f"SQLite {tmp_path / 'tiled' / 'catalog.db'}"
    with pytest.raises(ValueError, match="sqlite:///"):
        set_tiled_db(tmp_path, "mysql://x@db/y")


def test_up_takes_the_database_from_the_option_else_the_setting(monkeypatch, tmp_path):
    import sibyls.startup.stack as stack
    from sibyls.startup.cli import main

    asked = []
    monkeypatch.setattr(stack, "up", lambda var_dir, **kwargs: asked.append(kwargs["tiled_db"]))
    monkeypatch.setattr(stack, "describe", lambda state: "")
    monkeypatch.setenv(ProfileConfig.env_name("tiled_db"), "postgresql://from@setting/db")
    main(["up", "--var-dir", str(tmp_path), "--tiled-db", "postgresql://from@option/db"])
    main(["up", "--var-dir", str(tmp_path)])
    monkeypatch.delenv(ProfileConfig.env_name("tiled_db"))
    main(["up", "--var-dir", str(tmp_path)])
    assert asked == ["postgresql://from@option/db", "postgresql://from@setting/db", None]


def _wait_for_run(client, uid: str, timeout: float = 120.0):
    """The run once the Tiled writer (off the RunEngine thread) has written its stop document."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if uid in client and "stop" in client[uid].metadata:
            return client[uid]
        time.sleep(0.3)
    raise TimeoutError(f"run {uid} did not reach Tiled within {timeout} s")


def _run_one(state, sample_code: str) -> list[str]:
    """Queue one ``saxs_exposure`` on the stack and run it; the uids of its runs."""
    from sibyls.startup.stack import manager_api

    api = manager_api(state, timeout=10)
    try:
        added = api.item_add(BPlan("saxs_exposure", sample_code, PROJECT, exposure_time=0.1, num_frames=3))
        assert added["success"], added["msg"]
        api.queue_start()
        wait_until_idle(api)
        (entry,) = api.history_get()["items"][-1:]
    finally:
        api.close()
    assert entry["result"]["exit_status"] == "completed", entry["result"]["msg"]
    return entry["result"]["run_uids"]


def test_stack_on_postgres_stores_a_queued_run(tmp_path, pg_database, capsys):
    from tiled.client import from_uri

    from sibyls.startup.cli import main
    from sibyls.startup.stack import down, load_state
    from sibyls.startup.stack.starters import tiled_db_file

    uri = _with_password(SERVER, pg_database)
    var_dir = tmp_path / "stack"
    options = ["--var-dir", str(var_dir), "--ioc-prefix", "PGT:", "--time-scale", "50", "--binning", "8"]
    try:
        assert main(["up", *options, "--tiled-db", uri]) == 0
        state = load_state(var_dir.resolve())
        assert main(["status", "--var-dir", str(var_dir)]) == 0
        printed = capsys.readouterr().out
        assert f"Tiled catalog in PostgreSQL {masked_uri(uri)}" in printed and PASSWORD not in printed
        assert (tiled_db_file(var_dir).stat().st_mode & 0o777) == 0o600

        (uid,) = _run_one(state, "Lyz_pg")

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

        # A Tiled that died comes back on the same database (`sibyls up` again, no option needed).
        from sibyls.startup.stack.state import children, terminate

        terminate([state.pids["tiled"], *children(state.pids["tiled"])])
        assert main(["up", *options]) == 0
        state = load_state(var_dir.resolve())
        assert Path(state.tiled_api_key_file).read_text().strip() == key  # the worker's writer still holds it
        assert client[uid].metadata["start"]["sample_code"] == "Lyz_pg"
        (after,) = _run_one(state, "Lyz_pg2")
        assert _wait_for_run(client, after).metadata["start"]["sample_code"] == "Lyz_pg2"

        for log in (var_dir / "logs").glob("*.log"):
            assert PASSWORD not in log.read_text(errors="replace"), log.name
        import psutil

        tiled = psutil.Process(state.pids["tiled"])
        for process in (tiled, *tiled.children(recursive=True)):
            assert PASSWORD not in " ".join(process.cmdline())
    finally:
        down(var_dir)
