"""The one-minute maintenance sweep: recover lost work, retry due failures, dispatch waiting jobs.

Nothing is ever left stuck: a Started job whose worker died or timed out becomes Failed and follows
its retry policy; a Queued job whose RQ job vanished (Redis flush or restart) is pushed again.
"""

import contextlib
from datetime import timedelta

import frappe
import redis
from frappe import _
from frappe.utils import get_datetime, now_datetime
from frappe.utils.background_jobs import get_job

from sync_tweaks import dispatch, slots
from sync_tweaks.engine.status import S

# a Queued job younger than this may still be on its way to RQ (pushed right after its commit)
PUSH_GRACE_SECONDS = 5
LIVE_RQ_STATES = frozenset({"queued", "started", "deferred", "scheduled"})


def run_maintenance():
	"""Scheduler entry point (cron, every minute)."""
	for step in (recover_started, requeue_vanished, retry_due, dispatch.mark_next_in_line):
		try:
			step()
			frappe.db.commit()
		except redis.exceptions.RedisError:
			frappe.db.rollback()
			return  # Redis is down: nothing can be queued now; the next run catches up
	dispatch.run_dispatch()


def recover_started() -> list[str]:
	"""Fail Started jobs whose RQ job is gone, dead, or past timeout + grace; re-queue their batch mates."""
	now = now_datetime()
	lost = []
	for job in frappe.get_all(
		"Sync Job",
		filters={"status": S.STARTED.value},
		fields=["name", "job_id", "started_at", "timeout", "concurrency_key"],
	):
		state = rq_state(job.job_id)
		deadline = get_datetime(job.started_at) + timedelta(
			seconds=(job.timeout or 0) + slots.grace_seconds()
		)
		if state == "failed" and _timed_out(job.job_id):
			reason = _("timed out after {0} s").format(job.timeout)
		elif state in ("failed", "finished", "stopped", "canceled"):
			reason = _("worker lost: its RQ job ended ({0}) while the sync job was running").format(state)
		elif now >= deadline:
			reason = _("worker lost: no result {0} s after start (timeout {1} s)").format(
				int((now - get_datetime(job.started_at)).total_seconds()), job.timeout
			)
		else:
			continue
		mark_lost(job.name, reason)
		lost.append(job.name)
		requeue_batch_mates(job.job_id)
	return lost


def mark_lost(name: str, reason: str):
	from sync_tweaks.runner import next_retry_at

	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status != S.STARTED.value:
		return
	fields = {"error_message": reason, "ended_at": now_datetime(), "retry_after": None}
	if job.retry_count < job.max_retries:
		fields["retry_after"] = next_retry_at(job)
	job.transition(S.FAILED, **fields)
	if job.concurrency_key:
		with contextlib.suppress(redis.exceptions.RedisError):
			slots.release(job.concurrency_key, job.name)


def requeue_batch_mates(job_id: str | None):
	"""Jobs still Queued in a dead batch go back to Waiting, keeping their place in line."""
	if not job_id:
		return
	for name in frappe.get_all(
		"Sync Job", filters={"job_id": job_id, "status": S.QUEUED.value}, pluck="name"
	):
		requeue(name)


def requeue_vanished() -> list[str]:
	"""Push again the Queued jobs whose RQ job no longer exists or ended without running them."""
	cutoff = now_datetime() - timedelta(seconds=PUSH_GRACE_SECONDS)
	vanished = []
	for job in frappe.get_all(
		"Sync Job",
		filters={"status": S.QUEUED.value, "modified": ["<", cutoff]},
		fields=["name", "job_id"],
	):
		if rq_state(job.job_id) not in LIVE_RQ_STATES:
			requeue(job.name)
			vanished.append(job.name)
	return vanished


def requeue(name: str):
	"""Queued -> Waiting, freeing its slot, so the dispatcher pushes it again in order."""
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status != S.QUEUED.value:
		return
	job.transition(S.WAITING, job_id=None)
	if job.concurrency_key:
		with contextlib.suppress(redis.exceptions.RedisError):
			slots.release(job.concurrency_key, job.name)


def retry_due() -> list[str]:
	"""Failed jobs whose retry_after has come go back to Waiting (site time, never the DB clock)."""
	due = frappe.get_all(
		"Sync Job",
		# Frappe compares a NULL datetime as 0001-01-01: "is set" keeps jobs without a retry out
		filters=[
			["status", "=", S.FAILED.value],
			["retry_after", "is", "set"],
			["retry_after", "<=", now_datetime()],
		],
		pluck="name",
		order_by="retry_after asc",
		limit=1000,
	)
	for name in due:
		job = frappe.get_doc("Sync Job", name, for_update=True)
		if job.status == S.FAILED.value and job.retry_after:
			job.transition(S.WAITING, retry_after=None, retry_count=(job.retry_count or 0) + 1)
	return due


def rq_state(job_id: str | None) -> str | None:
	"""The RQ status of `job_id`, or None when it does not exist."""
	if not job_id:
		return None
	job = get_job(job_id)
	if not job:
		return None
	status = job.get_status(refresh=False)
	return str(getattr(status, "value", status)) if status else None


def _timed_out(job_id: str) -> bool:
	job = get_job(job_id)
	return bool(job and job.exc_info and "JobTimeoutException" in job.exc_info)
