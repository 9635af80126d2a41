"""One SAXS curve I(q) ± σ, and its plain-text ``.dat`` file (the three-column format ATSAS, RAW,
FreeSAS and ScÅtter read).

Every stage of the first look passes curves: the reduction makes one per frame, screening and
averaging combine them, subtraction and the Guinier fit read them, the exports write them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Q_UNIT = "1/angstrom"


@dataclass(frozen=True)
class Curve:
    """I(q) with its standard deviation; ``unit`` says what the intensity is in.

    ``unit`` is ``"1/cm"`` on absolute scale, ``"arbitrary"`` when normalised but not calibrated,
    ``"counts"`` for raw counts per pixel. ``qdev`` (Å⁻¹, 1 σ) is the q-resolution where known.
    """

    q: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    unit: str = "arbitrary"
    qdev: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.q)
        for name in ("intensity", "sigma"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"curve {name} has {len(getattr(self, name))} points, q has {n}")
        if self.qdev is not None and len(self.qdev) != n:
            raise ValueError(f"curve qdev has {len(self.qdev)} points, q has {n}")

    def __len__(self) -> int:
        return len(self.q)

    def restricted(self, q_min: float | None = None, q_max: float | None = None) -> Curve:
        """The part of the curve with ``q_min <= q <= q_max``."""
        keep = np.ones(len(self.q), dtype=bool)
        if q_min is not None:
            keep &= self.q >= q_min
        if q_max is not None:
            keep &= self.q <= q_max
        return Curve(
            self.q[keep],
            self.intensity[keep],
            self.sigma[keep],
            self.unit,
            None if self.qdev is None else self.qdev[keep],
            dict(self.meta),
        )


def write_dat(path: Path | str, curve: Curve, header: dict | None = None) -> Path:
    """Write ``curve`` as a ``.dat`` file: ``#`` header lines (``key: value``), then q, I, σ columns."""
    path = Path(path)
    lines = [f"# {key}: {value}" for key, value in (header or {}).items()]
    lines.append(f"# q({Q_UNIT})  I({curve.unit})  sigma({curve.unit})")
    body = np.column_stack([curve.q, curve.intensity, curve.sigma])
    text = "\n".join(lines) + "\n" + "\n".join(f"{q:.8e} {i:.8e} {s:.8e}" for q, i, s in body) + "\n"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def read_dat(path: Path | str) -> Curve:
    """Read a three-column ``.dat`` (q in Å⁻¹, I, σ); ``#`` lines are the header."""
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.shape[1] < 3:
        raise ValueError(f"{path}: a .dat file needs three columns (q, I, sigma), found {data.shape[1]}")
    unit = "arbitrary"
    for line in Path(path).read_text().splitlines():
        if line.startswith("# q(") and "I(" in line:
            unit = line.split("I(", 1)[1].split(")", 1)[0]
    return Curve(data[:, 0].copy(), data[:, 1].copy(), data[:, 2].copy(), unit)
