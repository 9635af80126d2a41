"""Project membership benchmark: a person's runs and history beside staff's, 5,000 runs of 20 projects.

On disk: 5,000 lambda-ber record files in 20 project folders (``<records>/<project>/...yaml``) and a
history of 5,000 queue items. Ours: what ``GET /api/sibyls/runs`` and ``/api/history/get`` do for a
person in one project (only their project's folder is read; the history is filtered by project).
Baseline, measured in the same run: the same calls for staff (every project). Target: ≤ 200 ms
median for the person.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.common import Figure, median_seconds

RUNS, PROJECTS, REPEAT = 5000, 20, 15
TARGET_MS = 200.0


def _setup(root: Path) -> dict:
    from sibyls.metadata.projects import Project, ProjectsFile

    records = root / "records"
    codes = [f"LAB_{i:02d}" for i in range(PROJECTS)]
    items = []
    for n in range(RUNS):
        code = codes[n % PROJECTS]
        folder = records / code
        folder.mkdir(parents=True, exist_ok=True)
        uid = f"{n:08x}-0000-4000-8000-000000000000"
        (folder / f"{n}_sample{n}_{uid[:8]}.yaml").write_text(f"uid: {uid}\nproject: {code}\n")
        kwargs = {"sample_code": f"sample{n}", "project_code": code, "exposure_time": 1.0}
        items.append({"name": "saxs_exposure", "item_uid": uid, "user": "x", "kwargs": kwargs, "result": {}})
    projects = {code: Project(code, members=("user",) if code == codes[3] else ("other",)) for code in codes}
    ProjectsFile(root / "projects.yaml").write(projects)
    return {"items": items}


def run() -> list[Figure]:
    from sibyls.startup.config import ProfileConfig
    from sibyls.startup.http.extensions import list_runs
    from sibyls.startup.http.membership import Person, history_for

    root = Path(tempfile.mkdtemp(prefix="sibyls-bench-projects-"))
    names = [ProfileConfig.env_name("var_dir"), ProfileConfig.env_name("projects")]
    saved = {k: os.environ.get(k) for k in names}
    try:
        history = _setup(root)
        os.environ[names[0]], os.environ[names[1]] = str(root), str(root / "projects.yaml")
        person, staff = Person("user"), Person("staff", staff=True)

        def listing(who: Person) -> tuple[int, int]:
            return len(list_runs(who)), len(history_for(history, who)["items"])

        assert listing(person) == (RUNS // PROJECTS, RUNS // PROJECTS), listing(person)
        assert listing(staff) == (RUNS, RUNS)
        ours = median_seconds(lambda: listing(person), REPEAT) * 1000
        baseline = median_seconds(lambda: listing(staff), REPEAT) * 1000
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)
    verdict = "ok" if ours <= TARGET_MS else "MISSED"
    return [
        Figure(
            f"a person's runs + history ({RUNS} runs, {PROJECTS} projects)",
            ours,
            baseline,
            "ms",
            None,
            "the same for staff (every project)",
            note=f"target <= {TARGET_MS:.0f} ms: {verdict}",
        )
    ]
