"""One supervisor for every long-running task of a service (relay, consumers, sweepers, workers).

A job is an async function that runs until cancelled. When it raises (or returns), the
supervisor logs it once with the cause, counts a restart, marks the job down (the service is
not ready meanwhile; a job that met an outage of our infrastructure is not down on its own
account, the database or NATS probe says so) and starts it again after a backoff. A job that has run for a while after
a restart is up again, which is logged once too. No bug in a job's error handling can end
its loop silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from services.chassis import metrics
from services.chassis.outage import is_infrastructure_error
from services.chassis.tasks import stop_task

log = logging.getLogger(__name__)

JobFn = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class _Job:
    name: str
    run: JobFn
    up: bool = False
    failures: int = 0  # consecutive, reset once the job has run stably
    restarts: int = 0
    last_error: str = ""
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs named jobs, restarting each after any exception with exponential backoff."""

    def __init__(
        self,
        service: str,
        *,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        outage_backoff: float = 1.0,
        stable_after: float = 2.0,
    ) -> None:
        self._service = service
        self._jobs: dict[str, _Job] = {}
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        # Waiting out an outage of our infrastructure costs a connection attempt a second;
        # a job that failed on a bug backs off further.
        self._outage_backoff = outage_backoff
        self._stable_after = stable_after
        self._started = False
        self._retry = asyncio.Event()

    def add(self, name: str, run: JobFn) -> None:
        """Register a job; started by `start`, or at once when the supervisor already runs."""
        if name in self._jobs:
            raise ValueError(f"job {name} is already supervised")
        job = _Job(name, run)
        self._jobs[name] = job
        if self._started:
            job.task = asyncio.create_task(self._supervise(job), name=f"job-{name}")

    async def start(self) -> None:
        self._started = True
        for job in self._jobs.values():
            if job.task is None:
                job.task = asyncio.create_task(self._supervise(job), name=f"job-{job.name}")

    async def stop(self) -> None:
        for job in reversed(list(self._jobs.values())):
            await stop_task(job.task)
            job.up = False

    def retry_now(self) -> None:
        """Cut every backoff short (the health monitor calls it when the database or NATS
        is back, so the service is ready again at once, not after the longest backoff)."""
        self._retry.set()
        self._retry = asyncio.Event()

    @property
    def ready(self) -> bool:
        """True unless a job failed on a bug and waits to be restarted."""
        return all(job.up for job in self._jobs.values())

    def down(self) -> list[str]:
        return [job.name for job in self._jobs.values() if not job.up]

    def restarts(self, name: str) -> int:
        return self._jobs[name].restarts

    def names(self) -> list[str]:
        return list(self._jobs)

    async def _supervise(self, job: _Job) -> None:
        while True:
            job.up = True
            metrics.JOB_UP.labels(self._service, job.name).set(1)
            task: asyncio.Task[None] = asyncio.create_task(job.run(), name=job.name)
            try:
                if job.failures:
                    done, _ = await asyncio.wait({task}, timeout=self._stable_after)
                    if not done:
                        log.info("job %s runs again after %d restart(s)", job.name, job.failures)
                        job.failures = 0
                        job.last_error = ""
                await task
                error, failure, outage = "it returned", None, False
            except asyncio.CancelledError:
                await stop_task(task)
                raise
            except Exception as exc:
                # An outage of our infrastructure needs no traceback; a bug does.
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                outage = is_infrastructure_error(exc)
                failure = None if outage else exc
            if job.failures == 0 or (not outage and error != job.last_error):
                # Once per failure streak (a bug again when its cause changes).
                log.warning(
                    "job %s failed: %s; restarting with backoff",
                    job.name,
                    error,
                    exc_info=failure,
                    extra={"job": job.name, "restarts": job.restarts + 1},
                )
            else:
                log.debug("job %s failed again: %s", job.name, error)
            # A job waiting out an outage is not broken: readiness already says the database or
            # NATS is away (health.py), and the job is back as soon as they are.
            job.up = outage
            metrics.JOB_UP.labels(self._service, job.name).set(0)
            job.failures += 1
            job.restarts += 1
            job.last_error = error
            metrics.JOB_RESTARTS.labels(self._service, job.name).inc()
            longest = self._outage_backoff if outage else self._max_backoff
            backoff = min(self._min_backoff * 2 ** (job.failures - 1), longest)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._retry.wait(), backoff)
