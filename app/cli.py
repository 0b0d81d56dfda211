"""The `clientele` command: serve, migrate, workspace and key administration, OpenAPI export."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from app.core.config import get_settings

app = typer.Typer(help="Clientele: customer data platform.", no_args_is_help=True, pretty_exceptions_enable=False)
workspace_app = typer.Typer(help="Create and list workspaces.", no_args_is_help=True)
key_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
app.add_typer(key_app, name="key")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]


def _database_url(migrate: bool = True) -> str:
    """Resolve the database (starting the embedded server if needed) and bring it to head."""
    from app.core import migrations
    from app.core.db import resolve_database_url

    url = resolve_database_url(get_settings())
    if migrate:
        migrations.upgrade(url)
    return url


def _run_with_session(fn: Callable[[Any], Awaitable[T]]) -> T:
    from app.core.db import Database, create_engine, standalone_session

    url = _database_url()

    async def runner() -> T:
        settings = get_settings()
        db = Database(create_engine(url, settings), settings)
        try:
            async with standalone_session(db) as session:
                return await fn(session)
        finally:
            await db.dispose()

    return asyncio.run(runner())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (CLIENTELE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (CLIENTELE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (CLIENTELE_WORKERS).")] = None,
) -> None:
    """Migrate the database and serve the API (embedded PostgreSQL when DATABASE_URL is unset)."""
    import uvicorn

    settings = get_settings()
    url = _database_url()
    # Workers are separate processes: hand them the resolved URL so they share one server.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default disposition that
    # kills the process before atexit stops the embedded PostgreSQL. Exit normally instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    where = "embedded PostgreSQL in " + str(settings.pgdata_dir) if not settings.database_url else "DATABASE_URL"
    err_console.print(f"[bold]Clientele[/] on http://{host or settings.host}:{port or settings.port} ({where})")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        access_log=False,
        log_config=None,
        proxy_headers=True,
    )


@app.command()
def migrate() -> None:
    """Apply every pending migration (alembic upgrade head)."""
    _database_url(migrate=True)
    err_console.print("database is at head")


@app.command()
def openapi(output: Annotated[Path, typer.Option(help="Where to write the document.")] = ROOT / "openapi" / "openapi.json") -> None:
    """Export the OpenAPI document (the committed contract)."""
    from app.main import create_app

    document = create_app().openapi()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    err_console.print(f"wrote {output}")


@workspace_app.command("create")
def workspace_create(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> None:
    """Create a workspace with one write key and one admin secret key (shown once)."""
    from app.workspaces import service

    created = _run_with_session(lambda s: service.create_workspace(s, name=name))
    out = {"workspace_id": str(created.workspace.id), "write_key": created.write_key, "secret_key": created.secret_key}
    if as_json:
        typer.echo(json.dumps(out))
        return
    console.print(f"workspace [bold]{name}[/] {out['workspace_id']}")
    console.print(f"write key  (ingest only, shown once): {out['write_key']}")
    console.print(f"secret key (admin scope, shown once): {out['secret_key']}")


@workspace_app.command("list")
def workspace_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List workspaces."""
    from app.workspaces import service

    rows = _run_with_session(service.list_workspaces)
    if as_json:
        typer.echo(json.dumps([{"id": str(w.id), "name": w.name, "created_at": w.created_at.isoformat()} for w in rows]))
        return
    table = Table("id", "name", "created")
    for w in rows:
        table.add_row(str(w.id), w.name, w.created_at.isoformat(timespec="seconds"))
    console.print(table)


WorkspaceOpt = Annotated[uuid.UUID, typer.Option("--workspace", "-w", help="Workspace id.")]


@key_app.command("create")
def key_create(
    workspace: WorkspaceOpt,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    kind: Annotated[str, typer.Option(help="write (ingest only) or secret.")] = "secret",
    scope: Annotated[list[str] | None, typer.Option(help="Scope of a secret key: read, write, admin (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key (shown once)."""
    from app.core.auth import Scope
    from app.workspaces import service

    if kind not in ("write", "secret"):
        raise typer.BadParameter("kind must be write or secret", param_hint="--kind")
    try:
        scopes = [Scope(s) for s in (scope or ["read"])]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None

    async def run(session: Any):
        await service.get_workspace(session, workspace_id=workspace)
        return await service.create_key(session, workspace_id=workspace, name=name, kind=kind, scopes=scopes)

    created = _run_with_session(run)
    if as_json:
        typer.echo(json.dumps({"id": str(created.key.id), "kind": kind, "scopes": created.key.scopes, "key": created.secret}))
        return
    console.print(f"{kind} key {created.key.id} scopes={created.key.scopes}")
    console.print(f"key (shown once): {created.secret}")


@key_app.command("list")
def key_list(workspace: WorkspaceOpt, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List a workspace's keys (prefix and metadata only)."""
    from app.workspaces import service

    keys = _run_with_session(lambda s: service.list_keys(s, workspace_id=workspace))
    rows = [
        {"id": str(k.id), "name": k.name, "kind": k.kind, "prefix": k.prefix, "scopes": k.scopes,
         "created_at": k.created_at.isoformat(), "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
        for k in keys
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("id", "name", "kind", "prefix", "scopes", "revoked")
    for r in rows:
        table.add_row(r["id"], r["name"], r["kind"], r["prefix"] + "…", ",".join(r["scopes"]), r["revoked_at"] or "")
    console.print(table)


@key_app.command("revoke")
def key_revoke(key_id: uuid.UUID, workspace: WorkspaceOpt) -> None:
    """Revoke a key immediately."""
    from app.core.errors import NotFound
    from app.workspaces import service

    try:
        _run_with_session(lambda s: service.revoke_key(s, workspace_id=workspace, key_id=key_id))
    except NotFound as exc:
        err_console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from None
    console.print(f"revoked {key_id}")


import_app = typer.Typer(help="Bulk-import profiles and events (orders) from CSV or NDJSON files.", no_args_is_help=True)
app.add_typer(import_app, name="import")

_FORMAT_BY_SUFFIX = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or NDJSON, optionally .gz.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv or ndjson; by default from the extension (.csv, .ndjson, .jsonl).")
]


def _import_file(kind: str, path: Path, workspace: uuid.UUID, fmt: str | None, as_json: bool) -> None:
    """Stream a file into a workspace with the API's code path (app.ingest.imports.run_import)."""
    from collections.abc import AsyncIterator

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from app.core.db import Database, create_engine
    from app.core.errors import AppError
    from app.ingest.imports import ImportFormat, ImportKind, ImportSummary, run_import

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    if fmt is not None and fmt.lower() not in ("csv", "ndjson"):
        raise typer.BadParameter(f"{fmt!r} is not csv or ndjson", param_hint="--format")
    fmt = (fmt or _FORMAT_BY_SUFFIX.get(suffixes[-1] if suffixes else "", "")).lower()
    if not fmt:
        raise typer.BadParameter(f"cannot tell the format of {path.name}; pass --format csv or ndjson", param_hint="--format")
    with path.open("rb") as fh:
        gzip = fh.read(2) == b"\x1f\x8b"  # the magic number, not the name, says whether it is compressed
    url = _database_url()
    progress = Progress(
        TextColumn(f"importing {path.name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=err_console, transient=True, disable=as_json or not err_console.is_terminal,
    )

    async def chunks() -> AsyncIterator[bytes]:
        task = progress.add_task("import", total=path.stat().st_size)
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                progress.advance(task, len(block))
                yield block

    async def runner() -> ImportSummary:
        settings = get_settings()
        db = Database(create_engine(url, settings), settings)
        try:
            # A plain session, not standalone_session: run_import commits after every chunk itself.
            async with db.session() as session:
                return await run_import(
                    session, settings, workspace_id=workspace, kind=ImportKind(kind), fmt=ImportFormat(fmt),
                    body=chunks(), gzip=gzip,
                )
        finally:
            await db.dispose()

    try:
        with progress:
            summary = asyncio.run(runner())
    except AppError as exc:
        err_console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
        return
    console.print(f"accepted {summary.accepted}, duplicates {summary.duplicates}, rejected {summary.rejected_count}")
    if summary.rejected:
        table = Table("row", "code", "reason")
        for e in summary.rejected[:20]:
            table.add_row(str(e.row), e.code, e.reason)
        console.print(table)
        if summary.rejected_count > 20:
            console.print(f"… and {summary.rejected_count - 20} more rejected rows (--json lists the first 1,000)")


@import_app.command("profiles")
def import_profiles(
    file: FileArg, workspace: WorkspaceOpt, fmt: FormatOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON only.")] = False,
) -> None:
    """Import profiles: one row per person (user_id/anonymous_id/email/phone + traits)."""
    _import_file("profiles", file, workspace, fmt, as_json)


@import_app.command("events")
def import_events(
    file: FileArg, workspace: WorkspaceOpt, fmt: FormatOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON only.")] = False,
) -> None:
    """Import events such as orders: one track message per row (user_id, event, timestamp, revenue...)."""
    _import_file("events", file, workspace, fmt, as_json)


@import_app.command("consents")
def import_consents(
    file: FileArg, workspace: WorkspaceOpt, fmt: FormatOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON only.")] = False,
) -> None:
    """Import consent records (a CRM's opt-in list): person, purpose, channel, status, occurred_at..."""
    _import_file("consents", file, workspace, fmt, as_json)


@app.command()
def dedup(
    workspace: WorkspaceOpt,
    threshold: Annotated[
        float | None, typer.Option(help="Merge candidates scoring at or above this (ledger rule `dedup`); "
                                        "omitted: review only, nothing merges on its own.")
    ] = None,
    review_only: Annotated[bool, typer.Option("--review-only", help="Never merge automatically; queue everything for review.")] = False,
    min_score: Annotated[float, typer.Option(help="Record candidates scoring at or above this.")] = 0.5,
    max_block_size: Annotated[int, typer.Option(help="Do not expand blocks larger than this.")] = 500,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Record candidates and check merges, merge nothing.")] = False,
    top: Annotated[int, typer.Option(help="How many of the best candidates to print.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run and the top candidates as JSON only.")] = False,
) -> None:
    """Find likely duplicate profiles (no shared identifier) and merge the confident ones, as POST /v1/dedup/runs."""
    from pydantic import ValidationError

    from app.core.errors import AppError
    from app.dedup import service
    from app.dedup.schemas import DedupRunCreate

    try:
        # The API's request model: the CLI accepts exactly what the endpoint accepts.
        params = DedupRunCreate(threshold=None if review_only else threshold, min_score=min_score,
                                max_block_size=max_block_size, dry_run=dry_run)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None

    async def run(session: Any):
        result = await service.run_dedup(
            session, workspace_id=workspace, threshold=params.threshold, min_score=params.min_score,
            max_block_size=params.max_block_size, dry_run=params.dry_run,
        )
        candidates, _ = await service.list_candidates(
            session, workspace_id=workspace, run_id=result.id, status=None, cursor=None, limit=max(top, 1)
        )
        return result, candidates[:top]

    try:
        result, candidates = _run_with_session(run)
    except AppError as exc:
        err_console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"run": result.model_dump(mode="json"),
                               "candidates": [c.model_dump(mode="json") for c in candidates]}))
        return
    counts = result.counts
    console.print(
        f"run {result.id}{' (dry run)' if result.dry_run else ''}: {counts.profiles_scanned} profiles, "
        f"{counts.pairs_compared} pairs compared, {counts.candidates} candidates, {counts.auto_merged} merged, "
        f"{counts.merge_conflicts} refused by identity limits, {counts.already_decided} decided earlier, "
        f"{counts.skipped_blocks} blocks skipped"
    )
    table = Table("score", "status", "profile a", "profile b", "evidence")
    for c in candidates:
        evidence = ", ".join(f"{k}={v}" for k, v in c.evidence.items() if not k.endswith("_bits") and isinstance(v, str))
        table.add_row(f"{c.score:.3f}", c.status, str(c.profile_a_id), str(c.profile_b_id), evidence)
    console.print(table)


@app.command()
def worker() -> None:
    """Run background jobs (computed-trait refreshes, schedules) until Ctrl-C or SIGTERM.

    `clientele serve` runs one inside the API process already (CLIENTELE_RUN_WORKER); run this
    to add capacity or to keep jobs off the API hosts (then set CLIENTELE_RUN_WORKER=false there).
    """
    import signal

    from app.core.db import Database, create_engine
    from app.jobs.worker import Worker

    settings = get_settings()
    url = _database_url()

    async def runner() -> bool:
        db = Database(create_engine(url, settings), settings)
        jobs = Worker(db, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await jobs.start()
        err_console.print("worker running; Ctrl-C stops it")
        try:
            stopped, died = asyncio.create_task(stop.wait()), asyncio.create_task(jobs.wait())
            await asyncio.wait({stopped, died}, return_when=asyncio.FIRST_COMPLETED)
            return not died.done()
        finally:
            await jobs.stop()
            await db.dispose()

    if not asyncio.run(runner()):
        err_console.print("[red]the worker stopped on an error (see the log)[/]")
        raise typer.Exit(1)


traits_app = typer.Typer(help="Computed traits.", no_args_is_help=True)
app.add_typer(traits_app, name="traits")


@traits_app.command("refresh")
def traits_refresh(
    workspace: WorkspaceOpt,
    background: Annotated[bool, typer.Option("--background", help="Queue it for the worker instead of running it here.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON only.")] = False,
) -> None:
    """Recompute a workspace's computed traits: order built-ins, RFM, CLV scores, defined traits."""
    from app.core.errors import AppError
    from app.traits import service
    from app.workspaces import service as workspace_service

    async def run(session: Any):
        await workspace_service.get_workspace(session, workspace_id=workspace)
        return await service.request_refresh(
            session, workspace_id=workspace, wait=not background, clv_refit_after=service.clv_refit_after(get_settings())
        )

    try:
        job = _run_with_session(run)
    except AppError as exc:
        err_console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from None
    out = {"job_id": str(job.id), "status": job.status, "result": job.result}
    if as_json:
        typer.echo(json.dumps(out))
        return
    console.print(f"job {out['job_id']}: {job.status}")
    for key, value in (job.result or {}).items():
        console.print(f"  {key}: {value}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
