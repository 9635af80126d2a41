"""What every benchmark reports, and how the runner prints it."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

_ca_port: int | None = None


def ca_port() -> int:
    """This benchmark run's loopback Channel Access port; set up once, before ophyd is imported."""
    global _ca_port
    if _ca_port is None:
        from sibyls.devices.epics_env import apply_loopback_ca_env, free_ca_port_pair

        _ca_port = free_ca_port_pair()
        apply_loopback_ca_env(_ca_port)
    return _ca_port


@dataclass
class Figure:
    """One benchmark figure: our value, the baseline measured in the same run, and the target ratio.

    ``lower_is_better`` decides how the ratio ours/baseline is judged against ``target_ratio``
    (a ratio ≤ target passes for times; ≥ target for throughputs).
    """

    name: str
    ours: float
    baseline: float
    unit: str
    target_ratio: float | None
    baseline_name: str
    lower_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def meets_target(self) -> bool | None:
        if self.target_ratio is None:
            return None
        return self.ratio <= self.target_ratio if self.lower_is_better else self.ratio >= self.target_ratio


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls of ``action``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def format_table(figures: list[Figure]) -> str:
    """A plain-text table: figure, ours, baseline, ratio, target, verdict."""
    header = f"{'figure':<46} {'ours':>12} {'baseline':>12} {'ratio':>8} {'target':>10}  verdict  baseline is"
    lines = [header, "-" * len(header)]
    for f in figures:
        target = (
            "—" if f.target_ratio is None else ("≤ " if f.lower_is_better else "≥ ") + f"{f.target_ratio:g}"
        )
        verdict = {None: "info", True: "ok", False: "MISSED"}[f.meets_target]
        values = f"{f.ours:>10.4g}{f.unit:>2} {f.baseline:>10.4g}{f.unit:>2} {f.ratio:>8.3f} {target:>10}"
        note = f"  ({f.note})" if f.note else ""
        lines.append(f"{f.name:<46} {values}  {verdict:<7}  {f.baseline_name}{note}")
    return "\n".join(lines)


def run_documents(recorded: list[tuple[str, dict]], uid: str) -> list[tuple[str, dict]]:
    """One run's documents (JSON-safe copies) out of everything a RunEngine emitted."""
    from sibyls.metadata.mapping import json_default

    out, descriptors, resources = [], set(), set()
    for name, doc in recorded:
        if (name == "start" and doc["uid"] == uid) or doc.get("run_start") == uid:
            if name == "descriptor":
                descriptors.add(doc["uid"])
            elif name == "resource":
                resources.add(doc["uid"])
        elif not (doc.get("descriptor") in descriptors or doc.get("resource") in resources):
            continue
        out.append((name, json.loads(json.dumps(doc, default=json_default))))
    return out
