"""A run's processed curves in Tiled, beside the run: what the first look made of its frames.

A user reads them with the tiled client where the run is::

    from tiled.client import from_uri
    processed = from_uri(url, api_key=key)[run_uid]["processed"]
    processed.metadata                        # Guinier Rg, I(0), MW, flags... and "complete": True
    processed["subtracted"].read()            # pandas table: q, intensity, sigma (and qdev if known)
    processed["frames"]["intensity"].read()   # per-frame I(q): array (frame, q); also "sigma", "q"

Layout: ``<run_uid>/processed`` is a container (spec ``SibylsProcessed``) holding one table per named
curve (``averaged``, ``subtracted``, ``buffer``...; columns ``q``, ``intensity``, ``sigma``, ``qdev``
when known; node metadata: units and the curve's own ``meta``) and, when frames are given, the
container ``frames`` with the per-frame curves on their shared q grid as arrays ``q`` (n_q),
``intensity`` and ``sigma`` (n_frames × n_q) and ``qdev``. Arrays rather than a wide table: a
600-frame SEC run would need 1201 columns, and a reader can take one frame (``[i]``) without the rest.

Storing again replaces the whole node (re-processing with another buffer leaves no stale curve).
The container says ``complete: False`` while it is being written and ``True`` once every curve is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import numpy as np

from sibyls.metadata.runs.sources import PROCESSED_KEY
from sibyls.saxs.reduction.curves import Q_UNIT, Curve

#: The child of the processed container with the per-frame curves.
FRAMES_KEY = "frames"
PROCESSED_SPEC = "SibylsProcessed"
CURVE_SPEC = "SibylsCurve"
FRAMES_SPEC = "SibylsFrameCurves"
_COLUMNS = ("q", "intensity", "sigma")
#: Keys of the container's metadata this module writes (the caller's ``metadata`` may not use them).
RESERVED_KEYS = ("complete", "curves", "frame_count", "q_unit", "written_at")


def _client(client_or_uri: Any, api_key: str | None):
    if isinstance(client_or_uri, str):
        from tiled.client import from_uri

        return from_uri(client_or_uri, api_key=api_key)
    return client_or_uri


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON for Tiled metadata: numpy as numbers and lists, pydantic models dumped,
    NaN and infinities as ``None`` (JSON has none), paths and times as text."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in Tiled metadata")


def _curve_table(curve: Curve):
    import pandas as pd

    columns = {"q": curve.q, "intensity": curve.intensity, "sigma": curve.sigma}
    if curve.qdev is not None:
        columns["qdev"] = curve.qdev
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in columns.items()})


def _curve_metadata(curve: Curve) -> dict:
    return {"q_unit": Q_UNIT, "intensity_unit": curve.unit, "meta": json_safe(curve.meta)}


def _check_frames(frames: Sequence[Curve]) -> None:
    if not frames:
        return
    q = np.asarray(frames[0].q)
    for i, frame in enumerate(frames):
        if len(frame.q) != len(q) or not np.allclose(frame.q, q, rtol=1e-9, atol=0):
            raise ValueError(f"frame {i} has another q grid than frame 0: frames must share one")
        if frame.unit != frames[0].unit:
            raise ValueError(f"frame {i} is in {frame.unit!r}, frame 0 in {frames[0].unit!r}")
    with_qdev = [f.qdev is not None for f in frames]
    if any(with_qdev) and not all(with_qdev):
        raise ValueError("some frames have qdev and others not")


def store_processed(
    client_or_uri: Any,
    run_uid: str,
    curves: Mapping[str, Curve],
    metadata: Mapping[str, Any],
    *,
    frames: Sequence[Curve] = (),
    api_key: str | None = None,
):
    """Write a run's processed curves into Tiled at ``<run_uid>/processed``; the container's client.

    ``curves`` maps names (``"averaged"``, ``"subtracted"``...) to curves, each stored as a table;
    ``frames`` are the run's per-frame curves (one q grid) stored as arrays under ``frames``;
    ``metadata`` (Guinier Rg and I(0), MW, flags, software, parameters: e.g. a first-look result's
    ``model_dump()``) goes on the container, made JSON-safe. ``client_or_uri`` is a tiled client or a
    server URL (with ``api_key``). A run processed before is replaced as a whole. Raises ``KeyError``
    if the run is not in Tiled, ``ValueError`` for bad names or frames on different q grids.
    """
    from tiled.structures.core import Spec

    bad = [n for n in curves if n == FRAMES_KEY or not n or "/" in n]
    if bad:
        raise ValueError(f"curve names {bad!r}: not {FRAMES_KEY!r}, empty or with '/'")
    taken = sorted(set(metadata) & set(RESERVED_KEYS))
    if taken:
        raise ValueError(f"metadata keys {taken} are written by store_processed itself")
    _check_frames(frames)
    client = _client(client_or_uri, api_key)
    if run_uid not in client:
        raise KeyError(
            f"run {run_uid} is not in Tiled at {client.uri}: nothing to store processed curves beside"
        )
    run = client[run_uid]
    tags = _access_tags(run)
    if PROCESSED_KEY in run:
        run[PROCESSED_KEY].delete(recursive=True, external_only=False)
    written_at = datetime.now(UTC).isoformat()
    meta = {
        **json_safe(dict(metadata)),
        "curves": list(curves),
        "frame_count": len(frames),
        "q_unit": Q_UNIT,
        "written_at": written_at,
    }
    node = run.create_container(
        key=PROCESSED_KEY,
        metadata={**meta, "complete": False},
        specs=[Spec(PROCESSED_SPEC, version="1")],
        access_tags=tags,
    )
    for name, curve in curves.items():
        node.write_table(
            _curve_table(curve),
            key=name,
            metadata=_curve_metadata(curve),
            specs=[Spec(CURVE_SPEC, version="1")],
            access_tags=tags,
        )
    if frames:
        _write_frames(node, frames, Spec, tags)
    node.update_metadata(metadata={**meta, "complete": True}, drop_revision=True)
    return run[PROCESSED_KEY]


def _access_tags(run) -> list[str] | None:
    """The run's own access tags (its project), for everything written beside it; None when the
    server has no tag-based access control."""
    try:
        blob = run.access_blob
    except (AttributeError, KeyError):
        return None
    return list(blob["tags"]) if "tags" in blob else None


def _write_frames(node, frames: Sequence[Curve], Spec, tags: list[str] | None = None) -> None:
    frame_meta = [json_safe(f.meta) for f in frames]
    container = node.create_container(
        key=FRAMES_KEY,
        metadata={
            "q_unit": Q_UNIT,
            "intensity_unit": frames[0].unit,
            "frames": len(frames),
            **({"frame_meta": frame_meta} if any(frame_meta) else {}),
        },
        specs=[Spec(FRAMES_SPEC, version="1")],
        access_tags=tags,
    )
    container.write_array(np.asarray(frames[0].q, dtype=float), key="q", dims=["q"], access_tags=tags)
    stacked = {
        "intensity": np.stack([np.asarray(f.intensity, dtype=float) for f in frames]),
        "sigma": np.stack([np.asarray(f.sigma, dtype=float) for f in frames]),
    }
    if frames[0].qdev is not None:
        stacked["qdev"] = np.stack([np.asarray(f.qdev, dtype=float) for f in frames])
    for key, array in stacked.items():
        container.write_array(array, key=key, dims=["frame", "q"], access_tags=tags)


def load_processed(
    client_or_uri: Any, run_uid: str, *, api_key: str | None = None
) -> tuple[dict[str, Curve], list[Curve], dict]:
    """A run's processed curves back from Tiled: ``(curves by name, per-frame curves, metadata)``.

    Raises ``KeyError`` when the run has none (or only a half-written set: ``complete`` is not True).
    """
    client = _client(client_or_uri, api_key)
    if run_uid not in client or PROCESSED_KEY not in client[run_uid]:
        raise KeyError(f"run {run_uid} has no processed curves in Tiled")
    node = client[run_uid][PROCESSED_KEY]
    metadata = dict(node.metadata)
    if metadata.get("complete") is not True:
        raise KeyError(f"run {run_uid}: its processed curves are still being written (or were cut short)")
    curves = {}
    for name in metadata["curves"]:
        child = node[name]
        table = child.read()
        qdev = table["qdev"].to_numpy() if "qdev" in table else None
        curves[name] = Curve(
            *(table[c].to_numpy() for c in _COLUMNS),
            child.metadata["intensity_unit"],
            qdev,
            dict(child.metadata.get("meta") or {}),
        )
    frames: list[Curve] = []
    if FRAMES_KEY in node:
        group = node[FRAMES_KEY]
        q, intensity, sigma = (group[k].read() for k in _COLUMNS)
        qdev = group["qdev"].read() if "qdev" in group else None
        frame_meta = group.metadata.get("frame_meta") or [{}] * len(intensity)
        unit = group.metadata["intensity_unit"]
        frames = [
            Curve(q, intensity[i], sigma[i], unit, None if qdev is None else qdev[i], dict(frame_meta[i]))
            for i in range(len(intensity))
        ]
    return curves, frames, metadata
