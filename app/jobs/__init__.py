"""Background jobs on PostgreSQL, through pgqueuer (asyncpg, LISTEN/NOTIFY, SKIP LOCKED).

- `queue`: enqueue from inside a transaction (the job exists only if it commits), dedupe keys.
- `service`: tracked jobs, whose status a client can follow (`job` table).
- `worker`: `Worker` (start/stop) running every domain's `Task`s and cron `Schedule`s.

pgqueuer's own tables are installed by the Alembic migration, so `alembic upgrade head`
(`clientele migrate`) is all a deployment needs.
"""
