"""`bench sync-job doctor`: the troubleshooting list made executable.

Each check returns findings as data (what is wrong and how to fix it), so the CLI, the Sync Job Type
form and tests read the same answers. Nothing here writes or commits.
"""

import dataclasses
from datetime import timedelta

import frappe
import redis
from frappe import _
from frappe.utils import get_datetime, now_datetime
from frappe.utils.background_jobs import get_queues_timeout

from sync_tweaks import controller
from sync_tweaks.engine.status import S
from sync_tweaks.queue import clock, dispatcher, lines, slots, workers

# a Waiting job whose key is free should be dispatched within a minute (scheduler tick) or at once
WAITING_GRACE = timedelta(minutes=2)
# retries are due at the next one-minute tick; five minutes late means the scheduler is not running
RETRY_GRACE = timedelta(minutes=5)
# how many job names a finding lists
SHOWN = 10


@dataclasses.dataclass(frozen=True)
class Finding:
	check: str
	problem: str
	fix: str
	jobs: tuple[str, ...] = ()

	def as_dict(self) -> dict:
		return dataclasses.asdict(self)


def run(sync_job_type: str | None = None) -> list[Finding]:
	"""Every check, for the whole site or for one Sync Job Type; an empty list means healthy."""
	types = enabled_types(sync_job_type)
	findings = []
	# failing checks msgprint (controller.load throws); the findings carry those messages instead
	messages = len(frappe.local.message_log)
	for check in (
		check_workers,
		check_scheduler,
		check_controllers,
		check_stuck_started,
		check_stuck_queued,
		check_stuck_waiting,
		check_overdue_retries,
		check_lines_behind_retry,
		check_paused,
	):
		try:
			findings.extend(check(types, sync_job_type))
		except redis.exceptions.RedisError as e:
			findings.append(
				Finding(
					check.__name__.removeprefix("check_"),
					_("Redis is unreachable: {0}").format(e),
					_("Start Redis (bench start, or the redis_cache/redis_queue services of the bench)"),
				)
			)
	del frappe.local.message_log[messages:]
	return findings


def enabled_types(sync_job_type: str | None = None) -> list:
	filters = {"disabled": 0}
	if sync_job_type:
		filters["name"] = sync_job_type
	return [
		frappe.get_doc("Sync Job Type", name)
		for name in frappe.get_all("Sync Job Type", filters=filters, pluck="name", order_by="name asc")
	]


def check_workers(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Every queue an enabled type (or an open job) uses has a live worker listening."""

	queues = {job_type.queue for job_type in types if job_type.queue}
	queues |= _queues_of(sync_job_type, S.WAITING, S.QUEUED)
	findings = []
	for queue in sorted(q for q in queues if q):
		if queue not in get_queues_timeout():
			findings.append(
				Finding(
					"workers",
					_("Queue {0} does not exist on this bench").format(queue),
					_("Use one of {0}, or add {1} to `workers` in common_site_config.json").format(
						", ".join(get_queues_timeout()), queue
					),
				)
			)
		elif not workers.live_workers(queue):
			findings.append(
				Finding(
					"workers",
					_("No worker listens on queue {0}: its Sync Jobs never run").format(queue),
					_(
						"Start one: `bench worker --queue {0}` (in production, add it to supervisor/systemd)"
					).format(queue),
				)
			)
	return findings


def check_scheduler(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Retries, dispatch and recovery run from the scheduler: it must be enabled and not dormant."""
	from frappe.utils.scheduler import is_dormant, is_scheduler_inactive

	site = frappe.local.site
	if frappe.conf.maintenance_mode or frappe.conf.pause_scheduler:
		return [
			Finding(
				"scheduler",
				_("The scheduler is paused (maintenance_mode or pause_scheduler in site config)"),
				_(
					"`bench --site {0} set-maintenance-mode off` and `bench --site {0} scheduler resume`"
				).format(site),
			)
		]
	if is_scheduler_inactive(verbose=False):
		return [
			Finding(
				"scheduler",
				_("The scheduler is disabled: failed jobs are not retried, lost jobs not recovered"),
				_("`bench --site {0} enable-scheduler` (and keep `bench schedule` running)").format(site),
			)
		]
	if is_dormant():
		return [
			Finding(
				"scheduler",
				_("The site is dormant (no recent user activity): scheduled jobs run only once a day"),
				_("Any login wakes it; for an API-only site raise `dormant_days` in System Settings"),
			)
		]
	return []


def check_controllers(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Every enabled type's controller imports and has a valid shape."""
	findings = []
	for job_type in types:
		for problem in controller.problems(job_type):
			findings.append(
				Finding(
					"controller",
					_("Sync Job Type {0}: {1}").format(job_type.name, problem),
					_("Fix the controller module, or disable the type"),
				)
			)
	return findings


def check_stuck_started(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Started jobs a minute past their deadline (timeout + grace): recovery should have failed them."""
	names = _past(S.STARTED, "deadline_at", slots.grace_seconds() + 60, sync_job_type)
	return _jobs_finding(
		"stuck_started",
		names,
		_("{0} Sync Job(s) have been Started for longer than their timeout + {1} s").format(
			len(names), slots.grace_seconds()
		),
		_(
			"Their worker died and recovery did not run: enable the scheduler, or recover now with `bench --site {0} execute sync_tweaks.queue.maintenance.run_maintenance`"
		).format(frappe.local.site),
	)


def check_stuck_queued(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Queued jobs older than timeout + grace: no worker took them, or Redis lost them."""
	return _overdue_finding(
		"stuck_queued",
		S.QUEUED,
		"modified",
		sync_job_type,
		_(
			"Start a worker on their queue; if Redis lost them, the scheduler re-queues them (`bench --site {0} execute sync_tweaks.queue.maintenance.run_maintenance`)"
		),
	)


def _overdue_finding(code: str, status, since: str, sync_job_type: str | None, fix: str) -> list[Finding]:
	"""A finding for the jobs in `status` since `since` for longer than their timeout + grace."""
	names = _overdue(since, status, sync_job_type)
	return _jobs_finding(
		code,
		names,
		_("{0} Sync Job(s) have been {1} for longer than their timeout + {2} s").format(
			len(names), _(status.value), slots.grace_seconds()
		),
		fix.format(frappe.local.site),
	)


def _jobs_finding(code: str, names: list[str], problem: str, fix: str) -> list[Finding]:
	"""One finding naming the first few of `names`, or none when there are none."""
	return [Finding(code, problem, fix, tuple(names[:SHOWN]))] if names else []


def check_stuck_waiting(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Waiting jobs whose line is free and slot unheld, unmoved for 2 minutes (not refused a queue)."""
	cutoff = now_datetime() - WAITING_GRACE
	busy = lines.busy_keys()
	full_queues = {queue for queue in _queues_of(sync_job_type, S.WAITING) if _queue_is_full(queue)}
	rows = frappe.get_all(
		"Sync Job",
		filters=_job_filters(sync_job_type, status=S.WAITING.value, modified=["<", cutoff]),
		fields=["name", "concurrency_key", "queue"],
		order_by="creation asc",
		limit=1000,
	)
	names, seen = [], set()
	known = set(get_queues_timeout())
	for row in rows:
		key = row.concurrency_key
		if row.queue in full_queues or row.queue not in known or (key and (key in busy or key in seen)):
			continue
		if key:
			seen.add(key)
			if slots.holder(key):
				continue
		names.append(row.name)
	return _jobs_finding(
		"stuck_waiting",
		names,
		_("{0} Sync Job(s) have been Waiting for over {1} minutes although their slot is free").format(
			len(names), int(WAITING_GRACE.total_seconds() // 60)
		),
		_(
			"The scheduler dispatches waiting jobs every minute: enable it, or dispatch now with `bench --site {0} execute sync_tweaks.queue.dispatcher.run_dispatch`"
		).format(frappe.local.site),
	)


def check_overdue_retries(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Failed jobs whose retry was due long ago: the scheduler is not running."""
	names = _past(S.FAILED, "due_at", RETRY_GRACE.total_seconds(), sync_job_type)
	return _jobs_finding(
		"overdue_retries",
		names,
		_("{0} failed Sync Job(s) were due for a retry more than {1} minutes ago").format(
			len(names), int(RETRY_GRACE.total_seconds() // 60)
		),
		_(
			"The scheduler is not running: `bench --site {0} enable-scheduler`, or retry now with `bench --site {0} sync-job retry --failed`"
		).format(frappe.local.site),
	)


def check_lines_behind_retry(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Lines held by a Failed job waiting for its retry: newer jobs of its key wait behind it."""
	rows = [
		row for row in lines.held_behind_retry() if not sync_job_type or _of_type(row.name, sync_job_type)
	]
	return [
		Finding(
			"behind_retry",
			_("{0} Sync Job(s) of {1} wait behind Failed job {2}, whose retry is due at {3}").format(
				row.waiting, row.concurrency_key, row.name, row.retry_after
			),
			_("Wait for the retry, or retry ({0}) or cancel the Failed job to let the line move").format(
				f"bench --site {frappe.local.site} sync-job retry {row.name}"
			),
			(row.name,),
		)
		for row in rows[:SHOWN]
	]


def check_paused(types: list, sync_job_type: str | None) -> list[Finding]:
	"""Paused types: their jobs are accepted but none starts."""
	findings = []
	for job_type in types:
		if not job_type.get("paused"):
			continue
		waiting = frappe.db.count("Sync Job", {"sync_job_type": job_type.name, "status": "Waiting"})
		findings.append(
			Finding(
				"paused",
				_("Sync Job Type {0} is paused ({1}); {2} job(s) wait").format(
					job_type.name, job_type.get("paused_reason") or _("no reason given"), waiting
				),
				_("Resume it on its form or with `bench --site {0} sync-job resume {1}`").format(
					frappe.local.site, job_type.name
				),
			)
		)
	return findings


def _of_type(name: str, sync_job_type: str) -> bool:
	return frappe.db.get_value("Sync Job", name, "sync_job_type") == sync_job_type


def _past(status: S, epoch_field: str, by: float, sync_job_type: str | None) -> list[str]:
	"""Jobs in `status` whose `epoch_field` (an epoch deadline) passed more than `by` seconds ago."""
	condition = " and sync_job_type=%(type)s" if sync_job_type else ""
	return frappe.db.sql_list(
		f"""select name from `tabSync Job` where status=%(status)s and {epoch_field} > 0
		and {epoch_field} < %(before)s{condition} order by {epoch_field} limit 1000""",
		{"status": status.value, "before": clock.now() - by, "type": sync_job_type},
	)


def _overdue(since_field: str, status: S, sync_job_type: str | None) -> list[str]:
	"""Jobs in `status` for longer than their own timeout + grace (timeouts differ per job)."""
	now = now_datetime()
	grace = slots.grace_seconds()
	# no job's deadline comes before its shortest possible timeout
	rows = frappe.get_all(
		"Sync Job",
		filters=_job_filters(
			sync_job_type, status=status.value, **{since_field: ["<", now - timedelta(seconds=grace)]}
		),
		fields=["name", "timeout", since_field],
		order_by=f"{since_field} asc",
		limit=1000,
	)
	return [
		row.name
		for row in rows
		if row.get(since_field)
		and get_datetime(row.get(since_field)) + timedelta(seconds=(row.timeout or 0) + grace) < now
	]


def _queues_of(sync_job_type: str | None, *statuses: S) -> set[str]:
	"""The queues that jobs in `statuses` are bound for."""
	condition = " and sync_job_type=%(type)s" if sync_job_type else ""
	return set(
		frappe.db.sql_list(
			f"select distinct queue from `tabSync Job` where status in %(statuses)s{condition}",
			{"statuses": tuple(s.value for s in statuses), "type": sync_job_type},
		)
	)


def _queue_is_full(queue: str) -> bool:
	"""Backpressure: a queue near its capacity (`sync_job_max_queued`, in drain mode a batch per
	worker and one more) keeps its jobs Waiting on purpose: the fill pass tops up whole batches."""
	return dispatcher.room_left(queue) < min(dispatcher.batch_size(), dispatcher.max_queued())


def _job_filters(sync_job_type: str | None, **filters) -> dict:
	if sync_job_type:
		filters["sync_job_type"] = sync_job_type
	return filters
