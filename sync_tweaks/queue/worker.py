"""The worker side: claim a Queued job, run its controller, record the outcome, free the slot.

Only this module and the scheduler commit. Each sync job gets its own transactions: Started is
committed before controller code runs, and the final status commits together with the target's
writes (or after they were rolled back, for failures and dry runs).
"""

import contextlib
import copy
import json
import signal
import threading
import time
from datetime import timedelta

import frappe
import redis
from frappe import _
from frappe.utils import now_datetime

from sync_tweaks import controller, dispatch, slots
from sync_tweaks.engine.backoff import retry_delay_seconds
from sync_tweaks.engine.status import FINISHED_HOOK, S
from sync_tweaks.exceptions import SyncControllerError, SyncJobError, SyncJobFatalError, SyncJobTimeout
from sync_tweaks.sync_run import SyncRun
from sync_tweaks.utils.snapshot import to_json


def execute_sync_job(sync_job_name: str):
	"""RQ entry point for one sync job."""
	execute_sync_jobs([sync_job_name])


def execute_sync_jobs(sync_job_names: list[str]):
	"""RQ entry point for a batch: each job runs in its own transactions, with its own timeout."""
	for name in sync_job_names:
		run_sync_job(name)


def run_sync_job(name: str) -> str | None:
	"""Run one Queued job to a final status; returns that status, or None when the job was not Queued."""
	frappe.db.rollback()
	job = claim(name)
	if not job:
		return None
	started = time.monotonic()
	try:
		with job_timeout(job.timeout), no_commits_in(job):
			finish(job, run_controller(job), started)
	except Exception as e:
		frappe.db.rollback()
		fail(job, e, started)
	frappe.db.commit()
	free_slot(job)
	return job.status


def claim(name: str):
	"""Lock the job and mark it Started, or return None if it is not Queued (duplicate delivery, cancel)."""
	try:
		job = frappe.get_doc("Sync Job", name, for_update=True)
	except frappe.DoesNotExistError:
		frappe.db.rollback()
		return None
	if job.status != S.QUEUED.value:
		frappe.db.rollback()
		return None
	keep_as_before_save(job)
	job.transition(S.STARTED, started_at=now_datetime(), ended_at=None, time_taken=None, error_message=None)
	frappe.db.commit()
	if job.concurrency_key:
		with contextlib.suppress(redis.exceptions.RedisError):
			slots.refresh(job.concurrency_key, job.name, job.timeout + slots.grace_seconds())
	return job


def run_controller(job):
	"""Run the controller in the job's mode; dry runs leave nothing behind but the job row."""
	from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import get_job_type

	module, shape = controller.load(get_job_type(job.sync_job_type))
	run = SyncRun(job, module, shape)
	outcome = run.run()
	if job.dry_run:
		frappe.db.rollback()
	if outcome.status == S.RELAYED:
		children = create_children(job, outcome.targets)
		job.multiple_target_documents = frappe.as_json(
			[
				{
					"sync_job": child.name,
					"operation": child.operation,
					"target_document_type": child.target_document_type,
					"target_document_name": child.target_document_name,
				}
				for child in children
			]
		)
		with dry_run_savepoint(job):
			run.hook("after_relay", children)
	if outcome.status in FINISHED_HOOK:
		with dry_run_savepoint(job):
			run.hook("finished", None if outcome.status == S.RELAYED else outcome.target_doc)
	return outcome


class JobSuperseded(Exception):
	"""Recovery declared the job lost while it was still running; its result is discarded."""


def finish(job, outcome, started: float):
	"""Write the outcome, unless recovery declared the job lost meanwhile (then nothing is kept)."""
	if locked_status(job.name) != S.STARTED.value:
		raise JobSuperseded(job.name)
	keep_as_before_save(job)
	keep = job.verbose_logging
	fields = {
		"operation": outcome.operation or job.operation,
		"target_document_type": outcome.target_document_type or job.target_document_type,
		"target_document_name": outcome.target_document_name or job.target_document_name,
		"context": job.context,
		"diff_summary": json.dumps(outcome.diff, default=str) if outcome.diff is not None else None,
		"current_data": to_json(outcome.before) if keep else None,
		"updated_data": to_json(outcome.after) if keep else None,
		"error_message": outcome.reason or None,
		"multiple_target_documents": job.multiple_target_documents,
		"retry_after": None,
		**timing(job, started),
	}
	job.transition(outcome.status, **fields)


def fail(job, error: BaseException, started: float):
	"""Record a failure; retryable ones get a retry_after per the type's backoff."""
	job.status = locked_status(job.name)
	if job.status != S.STARTED.value:
		frappe.db.rollback()
		return
	keep_as_before_save(job)
	retryable = not isinstance(error, SyncControllerError | SyncJobFatalError)
	fields = {"error_message": failure_message(job, error), "retry_after": None, **timing(job, started)}
	if retryable and job.retry_count < job.max_retries:
		fields["retry_after"] = next_retry_at(job)
	snapshots = job.flags.get("snapshots")
	if snapshots:
		fields["current_data"], fields["updated_data"] = map(to_json, snapshots)
	job.transition(S.FAILED, **fields)


def locked_status(name: str) -> str | None:
	"""The job's status, read under a row lock (plain SQL: this runs twice per job)."""
	rows = frappe.db.sql("select status from `tabSync Job` where name=%s for update", name)
	return rows[0][0] if rows else None


def keep_as_before_save(job):
	"""`db_set` re-reads the row to know what changed (Notifications on value change use it); the
	worker holds the row's lock and an exact copy, so hand that over instead of a second read."""
	before = copy.copy(job)
	before.__dict__.pop("_doc_before_save", None)
	job._doc_before_save = before


def failure_message(job, error: BaseException) -> str:
	if is_timeout(error):
		return _("timed out after {0} s").format(job.timeout)
	if isinstance(error, SyncJobFatalError | SyncControllerError):
		return str(error) or error.__class__.__name__
	return frappe.get_traceback()


def next_retry_at(job):
	backoff = frappe.db.get_value("Sync Job Type", job.sync_job_type, "retry_backoff") or "Fixed"
	return now_datetime() + timedelta(seconds=retry_delay_seconds(job.retry_delay, job.retry_count, backoff))


def timing(job, started: float) -> dict:
	return {"ended_at": now_datetime(), "time_taken": round(time.monotonic() - started, 6)}


def free_slot(job):
	"""Release the job's slot and queue the next job of its key (and any other ready work)."""
	if job.concurrency_key:
		with contextlib.suppress(redis.exceptions.RedisError):
			slots.release(job.concurrency_key, job.name)
	dispatch.run_dispatch(keys=[job.concurrency_key] if job.concurrency_key else ())


def create_children(job, targets: list[dict]) -> list:
	"""One child job per target, inheriting the parent's flags, queue, limits and trigger."""
	from sync_tweaks.utils.sync_job import create_sync_job

	context = job.get_context()
	children = []
	for target in targets:
		child_context = {**context, **(target.get("context") or {})}
		children.append(
			create_sync_job(
				sync_job_type=job.sync_job_type,
				parent_sync_job=job.name,
				source_document_type=job.source_document_type,
				source_document_name=job.source_document_name,
				operation=target["operation"],
				target_document_type=target["target_document_type"],
				target_document_name=target["target_document_name"],
				context=child_context or None,
				queue=job.queue,
				timeout=job.timeout,
				retry_delay=job.retry_delay,
				max_retries=job.max_retries,
				trigger_type=job.trigger_type,
				triggered_by_document_type=job.triggered_by_document_type,
				triggered_by_document_name=job.triggered_by_document_name,
				trigger_document_timestamp=job.trigger_document_timestamp,
				queue_on_insert=True,
				dry_run=job.dry_run,
				insert_enabled=job.insert_enabled,
				update_enabled=job.update_enabled,
				delete_enabled=job.delete_enabled,
				update_without_changes_enabled=job.update_without_changes_enabled,
			)
		)
	return children


@contextlib.contextmanager
def dry_run_savepoint(job):
	"""In a dry run, roll back whatever a hook writes."""
	if not job.dry_run:
		yield
		return
	frappe.db.savepoint("sync_job_dry_run")
	# Frappe keeps after-commit callbacks across a savepoint rollback: drop the ones the hook added
	pending = getattr(frappe.db.after_commit, "_functions", None)
	kept = len(pending) if pending is not None else 0
	try:
		yield
	finally:
		frappe.db.rollback(save_point="sync_job_dry_run")
		while pending is not None and len(pending) > kept:
			pending.pop()


@contextlib.contextmanager
def no_commits_in(job):
	"""Controllers never commit: the framework owns the transaction (a commit would leak dry-run writes)."""

	def refuse_commit(*args, **kwargs):
		raise SyncJobError(_("Sync controllers must not commit; the framework commits when the job ends"))

	frappe.db.commit = refuse_commit
	try:
		yield
	finally:
		del frappe.db.commit


@contextlib.contextmanager
def job_timeout(seconds: int):
	"""Stop the job with SyncJobTimeout after `seconds`, keeping RQ's own (batch) alarm armed."""
	if not seconds or threading.current_thread() is not threading.main_thread():
		yield
		return
	rq_remaining = signal.alarm(0)
	previous = signal.signal(signal.SIGALRM, _raise_timeout)
	started = time.monotonic()
	signal.setitimer(signal.ITIMER_REAL, seconds)
	try:
		yield
	finally:
		signal.setitimer(signal.ITIMER_REAL, 0)
		signal.signal(signal.SIGALRM, previous)
		if rq_remaining:
			signal.alarm(max(int(rq_remaining - (time.monotonic() - started)), 1))


def _raise_timeout(signum, frame):
	raise SyncJobTimeout()


def is_timeout(error: BaseException) -> bool:
	return isinstance(error, SyncJobTimeout) or error.__class__.__name__ == "JobTimeoutException"
