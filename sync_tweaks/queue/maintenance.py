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

from sync_tweaks.backfill import creation
from sync_tweaks.engine.status import S
from sync_tweaks.queue import (
	clock,
	dispatcher,
	fanout,
	gates,
	lines,
	liveness,
	retry,
	slots,
	states,
	transactions,
	worker,
)

LIVE_RQ_STATES = frozenset({"queued", "started", "deferred", "scheduled"})


def run_maintenance():
	"""Scheduler entry point (cron, every minute); one step failing never stops the others."""
	for step in (
		recover_started,
		requeue_vanished,
		retry_due,
		cancel_expired,
		lines.repair,
		fanout.complete_missed,
		creation.maintain,
	):
		try:
			step()
			frappe.db.commit()
		except redis.exceptions.RedisError:
			frappe.db.rollback()
			return  # Redis is down: nothing can be queued now; the next run catches up
		except Exception:
			frappe.db.rollback()
			frappe.log_error(title=f"Sync Job maintenance: {step.__name__} failed")
			frappe.db.commit()
	dispatcher.run_dispatch()


def each(names, action):
	"""Apply `action` to each job in its own savepoint: one broken job never stops the sweep."""
	done = []
	for name in names:
		point = transactions.Savepoint("sync_job_maintenance")
		try:
			if action(name) is not False:
				done.append(name)
		except redis.exceptions.RedisError:
			raise
		except Exception:
			point.rollback()
			frappe.log_error(title=f"Sync Job maintenance failed for {name}")
	return done


def recover_started() -> list[str]:
	"""Fail Started jobs whose process is gone or that passed their deadline; requeue their batch mates."""
	now = clock.now()
	rows = {
		row.name: row
		for row in frappe.get_all(
			"Sync Job",
			filters={"status": S.STARTED.value},
			fields=["name", "job_id", "timeout", "deadline_at"],
		)
	}

	def recover(name):
		row = rows[name]
		reason = lost_reason(row, now)
		if not reason or not mark_lost(name, row.job_id, reason):
			return False
		requeue_batch_mates(row.job_id)

	return each(list(rows), recover)


def lost_reason(row, now: float) -> str | None:
	"""Why the Started job `row` is lost, or None while it may still be running."""
	if row.job_id and frappe.cache().get(worker.overrun_mark(row.job_id)):
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


def mark_lost(name: str, delivery: str | None, reason: str) -> bool:
	"""Fail the Started job `name` if it still runs under the `delivery` that was judged lost."""
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status != S.STARTED.value or (job.job_id or None) != delivery:
		return False
	states.mark_failed(job, reason, retryable=True, ended_at=clock.site_now())
	return True


def requeue_batch_mates(job_id: str | None):
	"""Jobs still Queued in a dead batch go back to Waiting, keeping their place in line."""
	if job_id:
		for name in frappe.get_all(
			"Sync Job", filters={"job_id": job_id, "status": S.QUEUED.value}, pluck="name"
		):
			requeue(name)


def requeue_vanished() -> list[str]:
	"""Queued jobs whose RQ job no longer exists, ended without running them, or whose batch died."""
	rows = frappe.db.sql(
		"""select name, job_id from `tabSync Job` where status=%(queued)s
		and deadline_at < %(now)s""",
		{"queued": S.QUEUED.value, "now": clock.now()},
		as_dict=True,
	)
	dead = {row.name for row in rows if not delivery_is_live(row.job_id)}
	return each([row.name for row in rows if row.name in dead], requeue)


def delivery_is_live(job_id: str | None) -> bool:
	"""Whether RQ job `job_id` still waits in its queue, or runs in a live process."""
	job = get_job(job_id) if job_id else None
	status = job.get_status(refresh=False) if job else None
	status = str(getattr(status, "value", status)) if status else None
	if status not in LIVE_RQ_STATES:
		return False
	if status == "queued":
		# a worker killed between taking it from the queue and starting it leaves it "queued" in no queue
		return job.get_position() is not None
	if status != "started" or liveness.is_alive(job_id) is not False:
		return True
	# a work horse takes its lease only once Frappe is up: give a just-started RQ job that time
	started = job.started_at.replace(tzinfo=None) if job.started_at else None
	age = (datetime.now(timezone.utc).replace(tzinfo=None) - started).total_seconds() if started else 0
	return age < liveness.LEASE_SECONDS


def requeue(name: str) -> bool:
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status != S.QUEUED.value:
		return False
	states.requeue(job)
	return True


def retry_due() -> list[str]:
	"""Failed jobs whose retry is due go back to Waiting, at the head of their line."""

	def retry_now(name):
		job = frappe.get_doc("Sync Job", name, for_update=True)
		if job.status != S.FAILED.value or not job.due_at:
			return False
		states.mark_waiting(job, retry_count=(job.retry_count or 0) + 1)

	return each(retry.due(), retry_now)


def cancel_expired() -> list[str]:
	"""Pending and Waiting jobs older than their type's `expire_after` end Canceled ("expired after N min")."""
	names = []
	for job_type in frappe.get_all(
		"Sync Job Type", filters={"expire_after": [">", 0]}, fields=["name", "expire_after"]
	):
		names += frappe.get_all(
			"Sync Job",
			filters={
				"sync_job_type": job_type.name,
				"status": ["in", [S.PENDING.value, S.WAITING.value]],
				"creation": ["<=", gates.expiry_cutoff(job_type.expire_after)],
			},
			pluck="name",
			order_by="creation asc",
			limit=1000,
		)

	def expire(name):
		job = frappe.get_doc("Sync Job", name, for_update=True)
		if job.status not in (S.PENDING.value, S.WAITING.value):
			return False
		job_type = frappe.get_cached_doc("Sync Job Type", job.sync_job_type)
		if not gates.expired(job_type, job.creation):
			return False
		states.cancel(job, gates.expired_reason(job_type))

	return each(names, expire)
