"""The processing service ``sibyls up`` starts: every run's first look, off the acquisition path.

``python -m sibyls.startup.stack.processing`` (settings:
:class:`sibyls.startup.config.ProfileConfig`) subscribes to the 0MQ document proxy the RE worker
publishes into (bluesky's ``Publisher`` → ``bluesky-0MQ-proxy`` → ``RemoteDispatcher``), so it can run
on another host, and hands every document to a
:class:`sibyls.saxs.processing.service.FirstLookService`, whose stop-time first looks run on the Dask
cluster of :mod:`sibyls.saxs.processing.cluster` (a facility scheduler or a local cluster). At start
it catches up: stored runs (the document log) whose record has no first look yet are processed
first — a run measured while the service was down is not left without results. Its status (runs
processed, failed) is in ``<state>/processing.json``; ``sibyls status`` shows it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.projects import configured_projects
from sibyls.metadata.record_results import results_path
from sibyls.metadata.runs.doclog import read_document_log
from sibyls.saxs.processing.cluster import FirstLookCluster
from sibyls.saxs.processing.notices import PlateNotifier
from sibyls.saxs.processing.run_processor import analysis_kind
from sibyls.saxs.processing.service import FirstLookService
from sibyls.startup.config import ProfileConfig

log = logging.getLogger("sibyls.processing")

READY_FILE = "processing.ready"
STATUS_FILE = "processing.json"
STATUS_PERIOD_S = 2.0


def read_status(state_dir: Path | str) -> dict | None:
    """The service's last status (runs processed, failed), or None before it wrote one."""
    try:
        return json.loads((Path(state_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def runs_without_results(runs_dir: Path, records_dir: Path) -> list[Path]:
    """Document logs of runs that need a first look and whose record has none (or no record yet)."""
    waiting = []
    for path in sorted(runs_dir.rglob("*.jsonl")) if runs_dir.is_dir() else []:
        try:
            name, start = next(read_document_log(path))
        except (StopIteration, OSError, ValueError):
            continue
        if name != "start" or analysis_kind(start) is None:
            continue
        if not results_path(records_dir / record_relpath(start)).is_file():
            waiting.append(path)
    return waiting


def catch_up(service: FirstLookService, runs_dir: Path, records_dir: Path) -> int:
    """Queue the stored runs that have no first look yet (in measurement order); how many."""
    waiting = runs_without_results(runs_dir, records_dir)
    for path in waiting:
        for name, doc in read_document_log(path):
            service(name, doc)
    if waiting:
        log.info("catching up: %d stored runs without a first look queued", len(waiting))
    return len(waiting)


def _report(service: FirstLookService, state_dir: Path, stop: threading.Event) -> None:
    while not stop.wait(STATUS_PERIOD_S):
        status = {"processed": len(service.processed), "failed": len(service.failures), "pid": os.getpid()}
        if service.failures:
            status["last_failure"] = {"run": service.failures[-1][0], "error": service.failures[-1][1]}
        try:
            atomic_write_text(state_dir / STATUS_FILE, json.dumps(status))
        except OSError:
            log.exception("status file not written")


def main() -> int:
    """Run the service until SIGTERM/SIGINT; what was received is finished first (up to 30 s)."""
    from bluesky.callbacks.zmq import RemoteDispatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ProfileConfig.from_env()
    if not config.document_feed:
        log.error("%s is not set: no document proxy to read from", ProfileConfig.env_name("document_feed"))
        return 2
    config.state_dir.mkdir(parents=True, exist_ok=True)
    notifier = PlateNotifier(
        config.processed_dir,
        config.state_dir / "notices",
        configured_projects(config.projects),
        config.smtp(),
        config.page_url,
    )
    cluster = FirstLookCluster.from_config(config)
    service = FirstLookService(
        config.records_dir,
        config.processed_dir,
        poni=config.poni_file or None,
        absolute_scale=config.absolute_scale or None,
        tiled=config.tiled_url or None,
        tiled_api_key=config.tiled_api_key(),
        on_first_look=notifier,
        executor=cluster.executor(),
    )
    log.info("warmed up in %.1f s", service.warm_up())
    try:
        log.info("first looks on %s; workers warmed up: %s", cluster.where, cluster.warm_up())
    except Exception:  # the service still runs: each run's submission reports the cluster's error
        log.exception("the Dask cluster (%s) could not be reached or started", cluster.where)
    dispatcher = RemoteDispatcher(config.document_feed)
    dispatcher.subscribe(service)
    service.on_first_look_failed, service.on_run_stop = notifier.failed, notifier.stopped  # failed plates
    stop = threading.Event()
    threading.Thread(target=_report, args=(service, config.state_dir, stop), daemon=True).start()

    def ready() -> None:
        catch_up(service, config.var_dir / "runs", config.records_dir)
        atomic_write_text(config.state_dir / READY_FILE, str(os.getpid()))
        log.info("first look listening on %s", config.document_feed)

    def quit_(*_) -> None:
        dispatcher.loop.call_soon_threadsafe(dispatcher.loop.stop)

    signal.signal(signal.SIGTERM, quit_)
    signal.signal(signal.SIGINT, quit_)
    dispatcher.loop.call_soon(ready)  # runs once the dispatcher's socket is connected and subscribed
    try:
        dispatcher.start()
    except RuntimeError:  # the loop was stopped by a signal
        pass
    finally:
        stop.set()
        service.close(30.0)
        cluster.close()
        (config.state_dir / READY_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
