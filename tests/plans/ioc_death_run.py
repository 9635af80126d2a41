"""The IOC dies mid-exposure: run a saxs_exposure against an IOC of its own, kill it, report how it ended.

Run as a script by ``test_faults_plans.py`` (its own process: its own IOC on its own Channel Access
port, so the session's IOC is untouched). Prints one line ``RESULT {json}``.

Usage: ``python ioc_death_run.py WORK_DIR``
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from sibyls.devices.epics_env import apply_loopback_ca_env, free_ca_port_pair

PREFIX = "DEATH:"


def main(work: Path) -> dict:
    port = free_ca_port_pair()
    apply_loopback_ca_env(port)  # before ophyd is imported
    from sibyls.devices.sim.launcher import start_ioc

    ioc = start_ioc(PREFIX, port, work / "ioc.log", binning=8, time_scale=1.0)
    result: dict = {}
    try:
        from bluesky import RunEngine

        from sibyls.devices.beamline import build_beamline
        from sibyls.devices.sim.control import build_simulation_control
        from sibyls.plans import configure_plans, saxs_exposure, setup_run_engine

        beamline = build_beamline(PREFIX, timeout=15)
        build_simulation_control(PREFIX).put_in_cell({"sample_code": "Death_1", "kind": "buffer"})
        configure_plans(beamline, work / "data")
        RE = RunEngine({}, call_returns_result=True)
        writer = setup_run_engine(RE, beamline, work / "records", spool_dir=work / "spool")
        docs: list[tuple[str, dict]] = []
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        killed: list[float] = []

        def kill_mid_exposure() -> None:
            deadline = time.monotonic() + 30
            while beamline.pilatus.detector_state.get() != "Acquire" and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
            killed.append(time.monotonic())
            ioc.process.kill()

        threading.Thread(target=kill_mid_exposure, daemon=True).start()
        try:
            RE(saxs_exposure("Death_1", "DEATH", exposure_time=5.0, num_frames=3, sample_role="buffer_blank"))
        except Exception as exc:
            chain, seen, error = [], set(), exc
            while error is not None and id(error) not in seen:
                seen.add(id(error))
                chain.append(f"{type(error).__name__}: {error}")
                error = error.__cause__ or error.__context__
            result.update(
                error=f"{type(exc).__name__}: {exc}",
                notes=getattr(exc, "__notes__", []),
                chain=chain,
                ended_after_kill_s=time.monotonic() - killed[0] if killed else None,
            )
        result["stops"] = [
            {"exit_status": doc.get("exit_status"), "reason": doc.get("reason")}
            for name, doc in docs
            if name == "stop"
        ]
        result["records_flushed"] = writer.flush(timeout=10)
        result["records"] = [p.name for p in (work / "records").rglob("*.yaml")]
    finally:
        ioc.stop()
    return result


if __name__ == "__main__":
    outcome = main(Path(sys.argv[1]))
    print("RESULT " + json.dumps(outcome), flush=True)
    os._exit(0)  # skip libca's teardown: with the IOC gone it can crash the interpreter at exit
