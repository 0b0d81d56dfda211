"""The import graph's rules: `core` and `jobs` know no domain, so a domain plugs in without a
circle (a domain's jobs module imports `app.jobs.registry`, never the worker)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs.registry import JobContext, JobRegistry, Schedule, Task
from app.jobs.worker import domain_jobs
from tests.conftest import ROOT

DOMAINS = sorted(
    p.name for p in (ROOT / "app").iterdir()
    if p.is_dir() and (p / "__init__.py").exists() and p.name not in {"core", "jobs"}
)


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) for each `app.*` import of a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, node.lineno, id(node) in top) for n in names if n.startswith("app.")]
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "app" / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_domain(path: Path) -> None:
    bad = [(m, line) for m, line, _ in _imports(path) if not m.startswith("app.core")]
    assert not bad, f"app/core/{path.name} imports {bad}"


@pytest.mark.parametrize("path", sorted((ROOT / "app" / "jobs").glob("*.py")), ids=lambda p: p.name)
def test_jobs_import_no_domain_at_module_level(path: Path) -> None:
    """Only `domain_jobs` (inside the function) names the domains' jobs modules."""
    bad = [(m, line) for m, line, top in _imports(path)
           if top and not m.startswith(("app.core", "app.jobs"))]
    assert not bad, f"app/jobs/{path.name} imports {bad}"


def test_a_domain_jobs_module_imports_without_the_worker() -> None:
    code = "import sys, app.traits.jobs; print('app.jobs.worker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_domain_is_known() -> None:
    assert {"traits", "workspaces", "profiles"} <= set(DOMAINS)


def test_domain_jobs_collects_the_registered_tasks(settings) -> None:
    tasks, schedules = domain_jobs(settings)
    assert {"traits.refresh", "traits.incremental"} <= {t.name for t in tasks}
    assert {"jobs.prune", "identity.prune_log", "traits.refresh_all"} <= {s.name for s in schedules}
    off = domain_jobs(settings.model_copy(update={"traits_refresh_cron": ""}))[1]
    assert "traits.refresh_all" not in {s.name for s in off}


def test_registry_refuses_two_handlers_for_one_name(settings) -> None:
    async def run(ctx: JobContext, payload: dict) -> None:
        return None

    jobs = JobRegistry(settings)
    jobs.add_task(Task("x.run", run))
    with pytest.raises(ValueError, match="x.run"):
        jobs.add_task(Task("x.run", run))
    jobs.add_schedule(Schedule("x.tick", "* * * * *", lambda ctx: run(ctx, {})))
    with pytest.raises(ValueError, match="x.tick"):
        jobs.add_schedule(Schedule("x.tick", "0 * * * *", lambda ctx: run(ctx, {})))
