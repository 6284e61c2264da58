"""The circuit breaker: a type whose last `pause_after_failures` runs all failed pauses itself.

The count of consecutive failed runs per type lives in Redis (INCR, atomic across workers); a run
that ends any other way resets it. Deferrals (SyncJobRetryAfter) are not runs that ended.
"""

import frappe
import redis


def record_run(job, failed: bool):
	"""Count one ended run of `job`'s type; pause the type when its threshold is reached."""
	if not failed:
		from sync_tweaks.queue import after_commit  # after_commit -> dispatcher -> states -> here

		after_commit.delete_key(_key(job.sync_job_type))  # once the run's outcome is committed
		return
	try:
		count = frappe.cache().incr(_key(job.sync_job_type))
	except redis.exceptions.RedisError:
		return  # the breaker is advisory: a Redis outage must not change how the job ends
	threshold = _threshold(job.sync_job_type)
	if threshold and count >= threshold:
		from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import pause_type

		pause_type(
			job.sync_job_type,
			frappe._("paused after {0} consecutive failed runs (last: Sync Job {1})").format(count, job.name),
			notify=True,
		)


def reset(sync_job_type: str):
	"""Start counting afresh (on resume)."""
	try:
		frappe.cache().delete(_key(sync_job_type))
	except redis.exceptions.RedisError:
		pass


def consecutive_failures(sync_job_type: str) -> int:
	value = frappe.cache().get(_key(sync_job_type))
	return int(value or 0)


def _threshold(sync_job_type: str) -> int:
	return int(frappe.db.get_value("Sync Job Type", sync_job_type, "pause_after_failures", cache=False) or 0)


def _key(sync_job_type: str) -> str:
	return frappe.cache().make_key(f"sync_tweaks:failures:{sync_job_type}")
