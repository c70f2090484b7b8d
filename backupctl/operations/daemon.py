"""``backupctl scheduler``: the same jobs as ``run-due``, run by an APScheduler 3 daemon.

Each job is an APScheduler job with ``coalesce`` (missed slots run once),
``misfire_grace_time`` and ``max_instances=1``; its function is ``JobRunner.run_if_due``,
so the state file is kept exactly as ``run-due`` keeps it and a slot already run by
``run-due`` is not run again. At start (and on each reload) a job that is overdue
according to the state, because the daemon was down at its slot, runs at once, once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from backupctl.clock import utc_now
from backupctl.cron.triggers import TriggerFactory, cron_trigger
from backupctl.errors import BackupctlError
from backupctl.operations.jobs import JobRunner
from backupctl.policy.common import PolicyBase
from backupctl.policy.stack import Stack
from backupctl.scheduling.plan import STACK_DRILL, JobPlan, ScheduledJob, plan_jobs

log = structlog.get_logger()

PolicyLoader = Callable[[], list[PolicyBase]]
StackLoader = Callable[[], list[Stack]]


class SchedulerDaemon:
    """Schedules every job of the policies ``load`` returns; ``reload`` replaces them."""

    def __init__(
        self,
        load: PolicyLoader,
        runner: JobRunner,
        trigger_factory: TriggerFactory = cron_trigger,
        misfire_grace: timedelta = timedelta(hours=1),
        workers: int = 4,
        load_stacks: StackLoader = list,
    ):
        self._load, self._runner, self._trigger_factory = load, runner, trigger_factory
        self._load_stacks = load_stacks
        self._running: set[str] = set()
        #: the policies scheduled now (what the metrics describe)
        self.policies: list[PolicyBase] = []
        self._lock = threading.Lock()
        self._policy_locks: dict[str, threading.Lock] = {}
        self._stopping = threading.Event()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(misfire_grace.total_seconds()),
            },
            timezone="UTC",
        )
        self._scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # events are logged below

    def start(self) -> JobPlan:
        """Load the policies and start scheduling. Raises PolicyError / NotFoundError."""
        plan = self._apply(self._load(), self._load_stacks())
        self._scheduler.start()
        log.info("scheduler started", jobs=len(plan.jobs))
        return plan

    def reload(self) -> JobPlan | None:
        """Load the policies again and replace the jobs; on an error keep the current jobs."""
        log.info("reloading policies")
        try:
            policies, stacks = self._load(), self._load_stacks()
        except BackupctlError as exc:
            log.error("reload failed; the current jobs stay", error=str(exc))
            return None
        plan = self._apply(policies, stacks)
        log.info("policies reloaded", jobs=len(plan.jobs))
        return plan

    def stop(self) -> None:
        """Stop scheduling and wait for running jobs to finish (a backup is never cut)."""
        if not self._scheduler.running:
            return
        self._stopping.set()  # jobs waiting for their policy's turn do not start
        with self._lock:
            running = sorted(self._running)
        log.info("scheduler stopping; waiting for running jobs", running=running)
        self._scheduler.shutdown(wait=True)
        log.info("scheduler stopped")

    def _apply(self, policies: list[PolicyBase], stacks: list[Stack]) -> JobPlan:
        plan = plan_jobs(policies, self._trigger_factory, stacks)
        by_name: dict[str, PolicyBase] = {p.name: p for p in policies}
        stack_named = {s.name: s for s in stacks}
        self._runner.policies = list(policies)  # what a stack drill drills
        self._runner.register(plan.jobs)
        # published once their jobs are registered: /metrics then knows when each is due
        self.policies = list(policies)
        wanted = {job.id for job in plan.jobs}
        for existing in self._scheduler.get_jobs():
            if existing.id not in wanted:
                existing.remove()
        now = utc_now()
        for job in plan.jobs:
            options: dict[str, Any] = {}
            due = self._runner.next_due(job)
            if due is not None and due <= self._runner.now():
                options["next_run_time"] = now  # overdue: missed while the daemon was down
            self._scheduler.add_job(
                self._run,
                trigger=job.trigger,
                args=[
                    job,
                    stack_named[job.policy] if job.action == STACK_DRILL else by_name[job.policy],
                ],
                id=job.id,
                name=job.describe(),
                replace_existing=True,
                **options,
            )
        log.info(
            "jobs scheduled",
            jobs=[job.describe() for job in plan.jobs],
            continuous=[c.note for c in plan.continuous],
        )
        return plan

    def _run(self, job: ScheduledJob, policy: PolicyBase | Stack) -> None:
        """One firing: jobs of one policy run one after the other (a full backup and
        the binlogs due at the same time both run, in turn, instead of one being
        refused the policy's lock), like ``run-due`` runs them."""
        with self._lock:
            turn = self._policy_locks.setdefault(job.policy, threading.Lock())
        with turn:
            if not self._stopping.is_set():
                self._run_now(job, policy)

    def _run_now(self, job: ScheduledJob, policy: PolicyBase | Stack) -> None:
        with self._lock:
            self._running.add(job.id)
        try:
            if self._runner.run_if_due(job, policy) is None:
                log.info("job not due: this slot already ran", job=job.id)
        except BackupctlError as exc:  # the state file: this run is lost, the daemon goes on
            log.error("job could not run", job=job.id, error=str(exc))
        except Exception:  # a bug: logged as a JSON line with its traceback; the daemon goes on
            log.exception("job could not run: internal error", job=job.id)
        finally:
            with self._lock:
                self._running.discard(job.id)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "job run missed (later than the misfire grace); the next slot runs it",
                job=event.job_id,
                scheduled=event.scheduled_run_time.isoformat(),
            )
        else:
            log.warning("job skipped: still running", job=event.job_id)


def serve(daemon: SchedulerDaemon, poll_seconds: float = 1.0) -> None:
    """Run ``daemon`` until SIGTERM or SIGINT (then wait for running jobs); SIGHUP reloads.

    Raises what ``daemon.start`` raises (invalid policies).
    """
    stop, reload = threading.Event(), threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        reload.set()

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_reload}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        daemon.start()
        while not stop.is_set():
            stop.wait(poll_seconds)
            if reload.is_set() and not stop.is_set():
                reload.clear()
                daemon.reload()
    finally:
        daemon.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
