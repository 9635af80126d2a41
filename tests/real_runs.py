"""What the real runs of ``conftest.py`` are: their project, the protein's Rg, and a document recorder."""

from __future__ import annotations

PROJECT = "XCHG_TEST"
RG_A = 28.0
PROTEIN = {"kind": "sample", "rg_a": RG_A, "concentration_mg_ml": 5.0, "mw_kda": 60.0}


class Recorder:
    """Every document of every run, in order."""

    def __init__(self):
        self.docs: list[tuple[str, dict]] = []

    def __call__(self, name, doc):
        self.docs.append((name, doc))

    def of_run(self, uid):
        out, descriptors, resources = [], set(), set()
        for name, doc in self.docs:
            if (name == "start" and doc["uid"] == uid) or doc.get("run_start") == uid:
                out.append((name, doc))
                if name == "descriptor":
                    descriptors.add(doc["uid"])
                if name == "resource":
                    resources.add(doc["uid"])
            elif doc.get("descriptor") in descriptors or doc.get("resource") in resources:
                out.append((name, doc))
        return out
