"""`python -m services.<name> --migrate-only`: apply the service's migrations, then exit.

Kubernetes runs this as a Job before a rollout (deploy/k8s). The runner's advisory lock makes
concurrent runs (the Job and replicas starting at the same time) take turns, so scaling up
never races a migration.
"""

from __future__ import annotations

import logging
from pathlib import Path

from services.chassis import db
from services.chassis.settings import ServiceSettings

log = logging.getLogger(__name__)

FLAG = "--migrate-only"


async def migrate_only(settings: ServiceSettings, migrations: Path) -> list[str]:
    """Create the database when missing and apply pending migrations; returns their names."""
    await db.ensure_database(settings.database_url)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        applied = await db.migrate(pool, settings.service, migrations)
    finally:
        await pool.close()
    log.info("%s: %d migrations applied (%s)", settings.service, len(applied), ", ".join(applied))
    return applied
