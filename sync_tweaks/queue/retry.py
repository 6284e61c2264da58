"""The retry policy: whether a failure retries, when it is due, and which retries are due now.

A Failed job with a retry pending (`due_at` set) holds its key's line; one without frees it.
"""

import frappe

from sync_tweaks.engine.backoff import retry_delay_seconds
from sync_tweaks.engine.status import S
from sync_tweaks.exceptions import SyncControllerError, SyncJobFatalError
from sync_tweaks.queue import clock


def is_retryable(error: BaseException | None) -> bool:
	"""Controller bugs and SyncJobFatalError never retry; everything else may."""
	return not isinstance(error, SyncControllerError | SyncJobFatalError)


def may_retry(job, retryable: bool = True) -> bool:
	return retryable and (job.retry_count or 0) < (job.max_retries or 0)


def delay_seconds(job) -> float:
	"""The wait before the job's next retry, per its type's backoff."""
	try:
		backoff = frappe.get_cached_doc("Sync Job Type", job.sync_job_type).retry_backoff
	except frappe.DoesNotExistError:
		frappe.clear_last_message()
		backoff = None  # the type was deleted meanwhile
	return retry_delay_seconds(job.retry_delay, job.retry_count or 0, backoff or "Fixed")


def plan(job, retryable: bool = True) -> dict:
	"""The retry fields of a failure: when it is due (epoch and site time), or nothing."""
	if not may_retry(job, retryable):
		return {"retry_after": None, "due_at": 0}
	return wait_fields(delay_seconds(job))


def wait_fields(seconds: float) -> dict:
	"""`due_at` (what maintenance compares) and `retry_after` (what people read) `seconds` from now."""
	return {"retry_after": clock.site_time_in(seconds), "due_at": clock.now() + seconds}


def due(limit: int = 1000) -> list[str]:
	"""Failed jobs whose retry is due, oldest due first."""
	return frappe.db.sql_list(
		"""select name from `tabSync Job` where status=%(failed)s and due_at > 0
		and due_at <= %(now)s order by due_at asc limit %(limit)s""",
		{"failed": S.FAILED.value, "now": clock.now(), "limit": limit},
	)
