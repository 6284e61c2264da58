"""May this job start now? The rules every path that starts a job asks, one function per rule.

The dispatcher's selection asks them before it queues a Waiting job (`admit`), and the worker's claim
asks them again before it starts a Queued one (`refusal`), so a rule changed after a job was pushed
(a pause, a used-up rate limit) still holds, and every path that takes jobs inherits them:

- `paused`: a paused type starts nothing; its jobs stay Waiting and keep their place in line.
- `expired`: a job older than its type's `expire_after` never starts (maintenance cancels it).
- `deferred`: a job a controller deferred (`SyncJobRetryAfter`) starts only once `due_at` passed.
- `rate limited`: at most `rate_limit` starts per `rate_period` per bucket (`ratelimit`).

A job held back by a clock (deferral, rate limit) arms the waker for the moment it may start.
"""

import time

import frappe
from frappe.utils import add_to_date, get_datetime
from frappe.utils.background_jobs import get_queues_timeout

from sync_tweaks.backfill import states as backfill_states
from sync_tweaks.engine.status import S
from sync_tweaks.queue import clock, ratelimit


def paused_types() -> set[str]:
	"""Types paused right now, read from the database (effective at once on every worker)."""
	return set(frappe.db.sql_list("select name from `tabSync Job Type` where paused=1"))


def is_paused(sync_job_type: str) -> bool:
	return bool(
		frappe.db.sql("select paused from `tabSync Job Type` where name=%s and paused=1", sync_job_type)
	)


def expired(job_type, creation) -> bool:
	"""Whether a job created at `creation` (site time) is past its type's `expire_after`."""
	minutes = (job_type.get("expire_after") or 0) if job_type else 0
	return bool(minutes and creation and get_datetime(creation) <= expiry_cutoff(minutes))


def expiry_cutoff(minutes: int):
	"""Jobs created at or before this site time have been waiting `minutes`."""
	return add_to_date(clock.site_now(), minutes=-minutes)


def expired_reason(job_type) -> str:
	return frappe._("expired after {0} min").format(job_type.expire_after)


def deferred_until(row) -> float:
	"""The epoch a Waiting job may start from (a deferral's `due_at`), 0 when it may start now."""
	return float(row.get("due_at") or 0)


def admit(rows: list, lead: float = 0.0, paused: set[str] | None = None) -> list:
	"""The rows (Waiting jobs: name, sync_job_type, creation, due_at, queue) that may be queued now
	(or within `lead` seconds: the waker), arming the waker for those a clock holds back. `paused`:
	the paused types, when the caller read them in this transaction already."""
	if not rows:
		return rows
	paused = paused_types() if paused is None else paused
	real_now = clock.now()
	now = real_now + lead
	wake: dict[str, float] = {}
	room: dict[str, int] = {}
	next_token: dict[str, float] = {}
	admitted = []
	for row in rows:
		job_type = _job_type(row.sync_job_type)
		if row.sync_job_type in paused or expired(job_type, row.get("creation")):
			continue
		due = deferred_until(row)
		if due > real_now:  # never early, not even by the waker's lead
			at = due + ratelimit.LEAD  # the waker wakes LEAD early: at `due`
			wake[row.queue] = min(wake.get(row.queue, at), at)
			continue
		limits = ratelimit.limit_of(job_type)
		if limits:
			name = ratelimit.bucket(job_type, lambda row=row: _job(row))
			if name not in room:
				free, wait = ratelimit.peek(name, limits, now)
				room[name] = free - _queued_in(job_type, name)
				# once the free tokens are used (by this pass or by Queued jobs), the next frees in
				# `wait` (the oldest start leaves the window), or a period after those claims
				next_token[name] = now + (wait if room[name] >= 0 else limits[1])
			# the waker runs a queue's rate-limited jobs in its warm process, each on its token's
			# moment (a cold RQ job pushed now would start later and lag every later use of its
			# token); only when it falls behind do dispatchers push them to every worker
			to_waker = not lead and not ratelimit.waker_behind(row.queue)
			if room[name] <= 0 or to_waker:
				at = next_token[name] if room[name] <= 0 else real_now
				wake[row.queue] = min(wake.get(row.queue, at), at)
				continue
			room[name] -= 1
		admitted.append(row)
	for queue, at in wake.items():
		ratelimit.arm(queue, at)
	return admitted


def blocked_types(lead: float = 0.0, paused: set[str] | None = None) -> set[str]:
	"""Types the fill pass need not read at all: paused ones, and ones whose only bucket is used up
	(`lead` seconds from now)."""
	blocked = set(paused_types() if paused is None else paused)
	now = clock.now() + lead
	for name in frappe.db.sql_list(
		"select name from `tabSync Job Type` where rate_limit > 0 and ifnull(paused, 0)=0"
	):
		job_type = _job_type(name)
		limits = ratelimit.limit_of(job_type)
		if not limits or ratelimit.key_hook(job_type):
			continue  # per-key buckets are judged row by row (`admit`)
		queues = ready_queues(name)
		if not queues:
			continue  # nothing of it could start now: no wake-up to arm
		free, wait = ratelimit.peek(name, limits, now)
		room = free - _queued_in(job_type, name)
		if room <= 0:
			blocked.add(name)
			# what waits for it is never read below, so the wake-up is armed here (in its jobs' queues)
			for queue in queues:
				ratelimit.arm(queue, now + (wait if room == 0 else limits[1]))
		elif not lead:
			behind = [queue for queue in queues if ratelimit.waker_behind(queue)]
			if not behind:
				blocked.add(name)  # tokens are free: the waker takes them (see `admit`)
				for queue in queues:
					ratelimit.arm(queue, now)
	return sorted(blocked)


def ready_queues(job_type: str) -> list[str]:
	"""The queues where a job of `job_type` heads a free line and is due (one indexed probe each)."""
	return [
		queue
		for queue in get_queues_timeout()
		if frappe.db.sql(
			"""select name from `tabSync Job` where status=%(waiting)s and queue=%(queue)s
			and next_in_key=1 and sync_job_type=%(job_type)s and ifnull(due_at, 0) <= %(now)s limit 1""",
			{"waiting": S.WAITING.value, "queue": queue, "job_type": job_type, "now": clock.now()},
		)
	]


def refusal(job, job_type, now: float) -> tuple[str | None, float]:
	"""Whether the claimed job `job` may start: (None, epoch it starts at) or (why not: "paused",
	"expired", "canceled" (its backfill was) or "rate", seconds to wait).

	A rate limit takes its token here, at the epoch the claim stamps as `started_at`. Only in the
	waker, which takes jobs just before their token frees, the claim waits up to `TOKEN_WAIT` for it."""
	paused = job.flags.get("type_paused")  # read with the claimed row (`worker.load_locked`)
	if paused if paused is not None else is_paused(job.sync_job_type):
		return "paused", 0
	if expired(job_type, job.creation):
		return "expired", 0
	if backfill_states.job_refusal(job):
		return "canceled", 0
	limits = ratelimit.limit_of(job_type)
	if limits:
		bucket = ratelimit.bucket(job_type, job)
		wait = ratelimit.take(bucket, limits, job.name, now)
		if wait and wait <= (frappe.flags.get(ratelimit.TOKEN_WAIT) or 0):
			time.sleep(wait)
			now = clock.now()
			wait = ratelimit.take(bucket, limits, job.name, now)
		if wait:
			return "rate", wait
	return None, now


def _queued_in(job_type, name: str) -> int:
	"""Jobs of bucket `name` already Queued (pushed, token not taken yet): they will take tokens."""
	rows = frappe.db.sql(
		"select name from `tabSync Job` where sync_job_type=%(type)s and status='Queued'",
		{"type": job_type.name},
	)
	if not ratelimit.key_hook(job_type):
		return len(rows)
	return sum(1 for (job_name,) in rows if ratelimit.bucket(job_type, _job({"name": job_name})) == name)


def _job_type(name: str):
	try:
		return frappe.get_cached_doc("Sync Job Type", name)
	except frappe.DoesNotExistError:
		frappe.clear_last_message()
		return None


def _job(row):
	return frappe.get_doc("Sync Job", row["name"])
