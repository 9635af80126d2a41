"""The SIBYLS queueserver profile: what the RE worker (or an IPython session) loads.

``start-re-manager --startup-module sibyls.startup.profile`` or, interactively,
``from sibyls.startup.profile import *``. Gives: the SIBYLS devices connected to the IOC named
by the settings' ``ioc_prefix`` (:class:`~sibyls.startup.config.ProfileConfig`), a RunEngine that
refuses runs without the metadata contract, keeps ``scan_id`` counting across restarts, records a
baseline and writes a lambda-ber record per run, and the SIBYLS plans (the bare bluesky plans are not
offered).
"""

from bluesky import RunEngine
from bluesky.plan_stubs import mv, mvr  # raw moves: beamline staff (admin group) only
from bluesky.utils import PersistentDict
from bluesky_queueserver import is_re_worker_active

from sibyls.devices.beamline import build_beamline
from sibyls.metadata.housekeeping import acquisition_partial, cleanup_leftovers
from sibyls.metadata.plate_registry import use_registry
from sibyls.metadata.runs.doclog import DocumentLog
from sibyls.metadata.runs.recovery import recover_unfinished_runs
from sibyls.metadata.runs.tiled import LazyTiledWriter, project_access_tags
from sibyls.plans import QUEUE_PLANS, configure_plans, setup_run_engine
from sibyls.plans.run_engine import plan_progress as _progress_of
from sibyls.plans.validation import validate_queue_item
from sibyls.startup.config import ProfileConfig
from sibyls.startup.queue_metadata import QueueItemMetadata

config = ProfileConfig.from_env()
use_registry(config.plate_registry)  # plans check plate ids and wells against the robot's registry
for _folder in (config.data_dir, config.records_dir, config.spool_dir, config.state_dir):
    _folder.mkdir(parents=True, exist_ok=True)

beamline = build_beamline(config.ioc_prefix, timeout=config.connect_timeout)
globals().update(beamline.devices())

# scan_id (and only that: the contract guard refuses contract keys in RE.md) survives restarts.
RE = RunEngine(PersistentDict(str(config.state_dir / "runengine-md")))
record_writer = setup_run_engine(
    RE, beamline, config.records_dir, spool_dir=config.spool_dir, record_retry_s=config.record_retry_s
)
configure_plans(beamline, config.data_dir)
globals().update(QUEUE_PLANS)


def plan_progress() -> dict:
    """Where the current plan is (frame i/N, well i/N, time left): for queue clients and consoles."""
    return _progress_of(RE)


if config.redis_addr:  # progress for the page, `sibyls watch` and the HTTP progress endpoint
    from sibyls.startup.progress import ProgressPublisher, beamline_reader

    progress_publisher = ProgressPublisher(config.redis_addr, plan_progress, beamline_reader(beamline))
    progress_publisher.start()
    RE.subscribe(progress_publisher)

if config.document_proxy:  # every document to the processing service's first look (a PUB socket: never waits)
    from bluesky.callbacks.zmq import Publisher

    RE.subscribe(Publisher(config.document_proxy))

runs_log = DocumentLog(config.var_dir / "runs")  # every run's documents, for `sibyls export --runs-dir`
RE.subscribe(runs_log)
# A record for every run that opened (runs whose RE worker died); then that worker's leftovers go.
recover_unfinished_runs(config.var_dir / "runs", record_writer)  # records written in the background
cleanup_leftovers(
    runs_dir=config.var_dir / "runs",
    records_dir=config.records_dir,
    spool_dir=config.spool_dir,
    data_dir=config.data_dir,
    keep=[acquisition_partial(beamline.pilatus)],
)
if config.tiled_url:
    RE.subscribe(  # connects at the first run: a Tiled outage never blocks the environment
        LazyTiledWriter(
            config.tiled_url,
            config.tiled_api_key(),
            backup_directory=str(config.var_dir / "tiled-backup"),
            # each run is tagged with its project: only its people (and staff) see it in Tiled
            access_tags=project_access_tags(config.projects) if config.projects else None,
        )
    )
if is_re_worker_active() and config.zmq_control_addr:
    QueueItemMetadata(config.zmq_control_addr, config.zmq_public_key()).install(RE)

if not is_re_worker_active():
    from bluesky.callbacks.best_effort import BestEffortCallback

    bec = BestEffortCallback()
    bec.disable_plots()
    RE.subscribe(bec)

__all__ = [
    "RE",
    "beamline",
    "config",
    "mv",
    "mvr",
    "plan_progress",
    "record_writer",
    "validate_queue_item",
    *beamline.devices(),
    *QUEUE_PLANS,
]
