"""The one-minute maintenance sweep: recover lost work, retry due failures, repair lines, dispatch.

Nothing is left stuck: a Started job whose process died (its lease expired) or that passed its
deadline becomes Failed and follows the retry policy; Queued jobs whose RQ job vanished (Redis flush
or restart) or whose batch died go back to Waiting in their place in line.
"""

from datetime import datetime, timezone

import frappe
import redis
from frappe import _
from frappe.utils.background_jobs import get_job

from sync_tweaks.engine.status import S
from sync_tweaks.queue import clock, dispatcher, lines, liveness, retry, slots, states, worker

LIVE_RQ_STATES = frozenset({"queued", "started", "deferred", "scheduled"})


def run_maintenance():
	"""Scheduler entry point (cron, every minute)."""
	for step in (recover_started, requeue_vanished, retry_due, lines.repair):
		try:
			step()
			frappe.db.commit()
		except redis.exceptions.RedisError:
			frappe.db.rollback()
			return  # Redis is down: nothing can be queued now; the next run catches up
	dispatcher.run_dispatch()


def recover_started() -> list[str]:
	"""Fail Started jobs whose process is gone or that passed their deadline; requeue their batch mates."""
	now = clock.now()
	lost = []
	for row in frappe.get_all(
		"Sync Job",
		filters={"status": S.STARTED.value},
		fields=["name", "job_id", "timeout", "deadline_at"],
	):
		reason = lost_reason(row, now)
		if not reason:
			continue
		mark_lost(row.name, reason)
		lost.append(row.name)
		requeue_batch_mates(row.job_id)
	return lost


def lost_reason(row, now: float) -> str | None:
	"""Why the Started job `row` is lost, or None while it may still be running."""
	cache = frappe.cache()
	if cache.get(cache.make_key(worker.OVERRUN_MARK + row.name)):
		return _("timed out after {0} s (the controller did not stop, so its process was ended)").format(
			row.timeout
		)
	if liveness.is_alive(row.job_id) is False:
		return _("worker lost: its process stopped while the job was running")
	if row.deadline_at and now >= row.deadline_at + slots.grace_seconds():
		return _("worker lost: no result {0} s after start (timeout {1} s)").format(
			int(now - row.deadline_at + (row.timeout or 0)), row.timeout
		)
	return None


def mark_lost(name: str, reason: str):
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status == S.STARTED.value:
		states.mark_failed(job, reason, retryable=True, ended_at=clock.site_now())


def requeue_batch_mates(job_id: str | None):
	"""Jobs still Queued in a dead batch go back to Waiting, keeping their place in line."""
	if job_id:
		for name in frappe.get_all(
			"Sync Job", filters={"job_id": job_id, "status": S.QUEUED.value}, pluck="name"
		):
			requeue(name)


def requeue_vanished() -> list[str]:
	"""Queued jobs whose RQ job no longer exists, ended without running them, or whose batch died."""
	vanished = []
	for row in frappe.db.sql(
		"""select name, job_id from `tabSync Job` where status=%(queued)s
		and deadline_at < %(now)s""",
		{"queued": S.QUEUED.value, "now": clock.now()},
		as_dict=True,
	):
		if not delivery_is_live(row.job_id):
			requeue(row.name)
			vanished.append(row.name)
	return vanished


def delivery_is_live(job_id: str | None) -> bool:
	"""Whether RQ job `job_id` still waits in its queue, or runs in a live process."""
	job = get_job(job_id) if job_id else None
	status = job.get_status(refresh=False) if job else None
	status = str(getattr(status, "value", status)) if status else None
	if status not in LIVE_RQ_STATES:
		return False
	if status != "started" or liveness.is_alive(job_id) is not False:
		return True
	# a work horse takes its lease only once Frappe is up: give a just-started RQ job that time
	started = job.started_at.replace(tzinfo=None) if job.started_at else None
	age = (datetime.now(timezone.utc).replace(tzinfo=None) - started).total_seconds() if started else 0
	return age < liveness.LEASE_SECONDS


def requeue(name: str):
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status == S.QUEUED.value:
		states.requeue(job)


def retry_due() -> list[str]:
	"""Failed jobs whose retry is due go back to Waiting, at the head of their line."""
	due = retry.due()
	for name in due:
		job = frappe.get_doc("Sync Job", name, for_update=True)
		if job.status == S.FAILED.value and job.due_at:
			states.mark_waiting(job, retry_count=(job.retry_count or 0) + 1)
	return due
