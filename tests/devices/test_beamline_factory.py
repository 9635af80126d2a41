"""``build_beamline`` more than once in one process (a notebook cell run again, two prefixes, the
benchmarks one after another): ophyd takes class-wide signal defaults only before the first EPICS
signal exists, so the second build used to crash in ``EpicsSignalBase.set_defaults``.

Each case runs in a fresh interpreter: this test process has made EPICS signals long before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sibyls.devices.epics_env import free_ca_port_pair, loopback_ca_env


def run_python(code: str, ca_port: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **loopback_ca_env(ca_port or free_ca_port_pair())}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=env
    )


def test_two_beamlines_in_one_process_both_get_bounded_writes_and_monitors():
    result = run_python(
        """
        from sibyls.devices.beamline import WRITE_TIMEOUT_S, build_beamline
        first = build_beamline("ONE:", connect=False)
        again = build_beamline("ONE:", connect=False)   # the same cell run again
        other = build_beamline("TWO:", connect=False)   # a second prefix
        for beamline in (first, again, other):
            signal = beamline.cell_temperature.setpoint
            assert signal.write_timeout == WRITE_TIMEOUT_S, signal.write_timeout
            assert signal._auto_monitor is True
        print(other.ring.current.pvname)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "TWO:Ring:Current_RBV"


def test_signals_made_before_the_beamline_with_other_defaults_are_a_clear_error():
    result = run_python(
        """
        from ophyd import EpicsSignal
        from sibyls.devices.beamline import build_beamline
        EpicsSignal("ELSE:pv", name="first")   # made with ophyd's own defaults
        try:
            build_beamline("ONE:", connect=False)
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "EPICS signals were made in this process before the SIBYLS beamline" in result.stdout
    assert "build the beamline first" in result.stdout


@pytest.mark.slow
def test_a_second_beamline_connects_to_the_ioc_and_reads(sim_ioc):
    result = run_python(
        f"""
        from sibyls.devices.beamline import build_beamline
        build_beamline({sim_ioc.prefix!r}, timeout=15)
        beamline = build_beamline({sim_ioc.prefix!r}, timeout=15)
        print(beamline.ring.current.get())
        """,
        ca_port=sim_ioc.port,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) > 0
