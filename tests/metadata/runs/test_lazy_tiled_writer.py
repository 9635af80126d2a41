"""The Tiled writer's background thread: a run Tiled refuses does not end storage for later runs."""

from __future__ import annotations

from sibyls.metadata.runs import tiled as tiled_module


class RefusingOnce:
    """Stands in for bluesky's TiledWriter: refuses the first run's event, keeps what it accepts."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []
        self.refused = False

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event" and not self.refused:
            self.refused = True
            raise RuntimeError("tiled said 500")
        self.accepted.append((name, doc.get("uid", "")))


def test_a_refused_document_skips_the_rest_of_its_run_and_the_next_run_is_stored(monkeypatch, caplog):
    made: list[RefusingOnce] = []

    def make(url, api_key=None, **kwargs):
        made.append(RefusingOnce() if not made else made[0])
        return made[-1]

    monkeypatch.setattr(tiled_module, "make_tiled_writer", make)
    writer = tiled_module.LazyTiledWriter("http://127.0.0.1:1/api")
    for run in ("one", "two"):
        for name in ("start", "descriptor", "event", "stop"):
            writer(name, {"uid": f"{run}-{name}"})
    assert writer.flush(10)
    accepted = made[0].accepted
    assert ("start", "one-start") in accepted and ("stop", "one-stop") not in accepted  # the rest skipped
    second = [uid for _, uid in accepted if uid.startswith("two")]
    assert second == ["two-start", "two-descriptor", "two-event", "two-stop"]
    assert "Tiled at http://127.0.0.1:1/api refused a event document" in caplog.text
