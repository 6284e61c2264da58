"""The RQ entry point: run a batch of Queued sync jobs, each in its own transactions.

For each job: claim it (only the delivery recorded on the job may), run it as its user under a
hard time limit, apply its controller, and record the outcome together with the target's writes,
or the failure after rolling them back. A lease tells maintenance the batch's process is alive.
"""

import json
import os
import time

import frappe
import redis
import rq
from frappe import _
from rq.timeouts import JobTimeoutException

from sync_tweaks import apply
from sync_tweaks.backfill import states as backfill_states
from sync_tweaks.engine.signature import controller_frame, error_signature
from sync_tweaks.engine.status import S
from sync_tweaks.exceptions import SyncControllerError, SyncJobFatalError, SyncJobRetryAfter, SyncJobTimeout
from sync_tweaks.queue import (
	after_commit,
	clock,
	dispatcher,
	gates,
	liveness,
	ratelimit,
	retry,
	states,
	timeouts,
	transactions,
)
from sync_tweaks.utils.snapshot import to_json

OVERRUN_MARK = "sync_tweaks:overrun:"
# a drained job must be able to run to its timeout before RQ's own limit for the batch ends
DRAIN_MARGIN_SECONDS = 15


def execute_sync_jobs(sync_job_names: list[str], delivery: str | None = None):
	"""RQ entry point for a batch: each job runs in its own transactions, with its own timeout."""
	run_batch(sync_job_names, delivery or current_delivery())


def execute_sync_job(sync_job_name: str, delivery: str | None = None):
	"""RQ entry point for one job."""
	run_batch([sync_job_name], delivery or current_delivery())


def run_batch(names: list[str], delivery: str | None) -> list[str | None]:
	"""Run the jobs given to `delivery`, then drain; returns each one's final status (None: not ours)."""
	user = frappe.session.user
	started = time.monotonic()
	try:
		transactions.rollback()  # whatever the caller left open
		with liveness.lease(delivery or "none"), after_commit.held():
			statuses = run_jobs(names, delivery)
			return statuses + drain(names, delivery, started)
	finally:
		if frappe.session.user != user:
			frappe.set_user(user)


def run_jobs(names: list[str], delivery: str | None) -> list[str | None]:
	"""Run `names` one after another, each claimed and recorded in transactions of its own, then run
	the dispatcher's fill pass once for the group."""
	statuses = []
	for name in names:
		job = claim(name, delivery)
		statuses.append(run_sync_job(job, delivery) if job else None)
	after_commit.flush()
	return statuses


def drain(names: list[str], delivery: str | None, started: float) -> list[str | None]:
	"""Drain mode: while jobs are ready in this RQ job's queue, keep taking them a group at a time,
	until none is ready, the time budget ends, the worker is asked to stop, or a queue it serves
	first has work. The types with jobs ready when the drain begins take turns (see `take_for_drain`)."""
	rq_job = rq.get_current_job()
	budget = dispatcher.drain_seconds()
	queue = _queue_of(names) if rq_job and delivery and budget else None
	if not queue:
		return []
	rq_worker = _rq_worker(rq_job)
	ahead = rq_queues_ahead(rq_worker, queue)
	types = dispatcher.ready_types(queue)
	statuses = []
	while types and time.monotonic() - started < budget and not stop_draining(rq_worker, ahead):
		room = (rq_job.timeout or 0) - (time.monotonic() - started) - DRAIN_MARGIN_SECONDS
		group = dispatcher.take_for_drain(delivery, queue, dispatcher.batch_size(), room, types)
		frappe.db.commit()
		if not group:
			break
		statuses += run_jobs(group, delivery)
	return statuses


def stop_draining(rq_worker, ahead: list) -> bool:
	"""A queue this worker serves first has work, or the worker was asked to stop (warm shutdown)."""
	if any(len(queue) for queue in ahead):
		return True
	return bool(rq_worker and rq_worker.connection.hget(rq_worker.key, "shutdown_requested_date"))


def _rq_worker(rq_job):
	worker_name = getattr(rq_job, "worker_name", None)
	if not worker_name:
		return None
	return rq.Worker.find_by_key(
		rq.Worker.redis_worker_namespace_prefix + worker_name, connection=rq_job.connection
	)


def rq_queues_ahead(rq_worker, queue: str) -> list:
	"""The RQ queues `rq_worker` serves before `queue` (it takes their jobs first)."""
	if not rq_worker:
		return []
	names = [q.name.rsplit(":", 1)[-1] for q in rq_worker.queues]
	return rq_worker.queues[: names.index(queue)] if queue in names else []


def _queue_of(names: list[str]) -> str | None:
	rows = frappe.db.sql(
		"select queue from `tabSync Job` where name in %(names)s limit 1", {"names": tuple(names)}
	)
	return rows[0][0] if rows else None


def run_sync_job(job, delivery: str | None) -> str | None:
	"""Run the claimed `job` to a final status; returns it, or None when recovery took the job over
	meanwhile and this run's result was discarded. Ends outside a transaction."""
	run_as(job)
	started = time.monotonic()
	limit = None
	frappe.local.sync_tweaks_running_job = job.name
	try:
		with timeouts.time_limit(job.timeout, on_overrun=end_process) as limit:
			with transactions.no_commits(job):
				outcome = apply.run(job)
			record_outcome(job, outcome, started, delivery)
	except JobSuperseded:
		transactions.rollback()
		return None
	except SyncJobRetryAfter as e:
		transactions.rollback()
		if not record_deferral(job, e, started, delivery):
			return None
	except (Exception, SyncJobTimeout) as e:
		transactions.rollback()
		if not record_failure(job, e, started, delivery, timed_out=bool(limit and limit.fired)):
			return None
	finally:
		frappe.local.sync_tweaks_running_job = None
	commit_outcome(job)
	return job.status


def commit_outcome(job):
	"""Commit the job's outcome. Frappe runs after-commit callbacks after the SQL COMMIT: should one
	the controller queued raise, the queue's own (slot, dispatch, realtime) still run, and the error
	is logged instead of ending the batch."""
	try:
		frappe.db.commit()
		return
	except JobTimeoutException:
		raise  # RQ's own limit for the batch: nothing more may run
	except Exception:
		committed = frappe.db.get_value("Sync Job", job.name, "status") == job.status
		if not committed:
			raise
		frappe.log_error(title=f"An after-commit callback of Sync Job {job.name} failed")
	for _attempt in range(100):  # the callbacks still queued, each failure logged
		try:
			frappe.db.after_commit.run()
			return
		except JobTimeoutException:
			raise
		except Exception:
			frappe.log_error(title=f"An after-commit callback of Sync Job {job.name} failed")


def claim(name: str, delivery: str | None):
	"""Lock the job and mark it Started, or return None unless it is Queued for `delivery`."""
	job = load_locked(name)
	if not job:
		transactions.rollback()
		return None
	if job.status != S.QUEUED.value or (job.job_id or None) != delivery:
		transactions.rollback()  # a duplicate or stale delivery, or a cancel
		return None
	try:
		job_type = frappe.get_cached_doc("Sync Job Type", job.sync_job_type)
	except frappe.DoesNotExistError:
		frappe.clear_last_message()
		job_type = None
	transactions.hand_over_before_save(job)
	if not job_type:  # deleted after the job was queued: nothing can run it
		states.mark_started(job)
		states.mark_failed(
			job, _("Sync Job Type {0} does not exist").format(job.sync_job_type), retryable=False
		)
		frappe.db.commit()
		return None
	refused, at = gates.refusal(job, job_type, clock.now())
	if refused:
		hand_back(job, job_type, refused, at)
		frappe.db.commit()
		return None
	job.flags.run_as = run_as_user(job, job_type)
	try:
		states.mark_started(job, user=job.flags.run_as, at=at)
	except redis.exceptions.RedisError:
		pass  # a cached copy it could not clear: the Started row is what counts
	frappe.db.commit()
	return job


def load_locked(name: str):
	"""The Sync Job `name` as a document, its row locked, or None. One plain statement: the query
	builder behind `frappe.get_doc(..., for_update=True)` costs each job more than the read itself,
	and a Sync Job has no child tables to load."""
	if frappe.get_meta("Sync Job").get_table_fields():  # a site added a table: Frappe loads it
		try:
			return frappe.get_doc("Sync Job", name, for_update=True)
		except frappe.DoesNotExistError:
			frappe.clear_last_message()
			return None
	rows = frappe.db.sql(
		# the type's pause rides along: a plain read in a fresh snapshot, which locks nothing
		"""select *, (select paused from `tabSync Job Type` t where t.name=j.sync_job_type) as type_paused
		from `tabSync Job` j where j.name=%s for update""",
		name,
		as_dict=True,
	)
	if not rows:
		return None
	paused = rows[0].pop("type_paused")
	job = frappe.get_doc({**rows[0], "doctype": "Sync Job"})
	job.flags.for_update = True  # as get_doc sets it: a controller's job.reload() locks the row too
	job.flags.type_paused = bool(paused)
	return job


def hand_back(job, job_type, reason: str, wait: float):
	"""A claimed job that may not start now: an expired one (or one of a canceled backfill) is
	canceled; one of a paused type or over its rate limit goes back to Waiting in its place in line
	(no retry used). The claim's transaction commits it."""
	if reason == "expired":
		states.cancel(job, gates.expired_reason(job_type))
	elif reason == "canceled":
		states.cancel(job, backfill_states.job_refusal(job))
	else:
		states.requeue(job)
		if wait:
			ratelimit.arm(job.queue, clock.now() + wait)


def run_as_user(job, job_type) -> str:
	"""Each job runs as its type's `run_as` user, else as its creator (Guest-created: Administrator)."""
	user = job_type.get("run_as") or job.owner
	return "Administrator" if not user or user == "Guest" else user


def run_as(job):
	"""Switch the session to the job's user (see `run_as_user`)."""
	if frappe.session.user != job.flags.run_as:
		frappe.set_user(job.flags.run_as)


class JobSuperseded(Exception):
	"""Recovery declared the job lost while it was still running; its result is discarded."""


def record_outcome(job, outcome, started: float, delivery: str | None):
	"""Write the outcome, unless recovery declared this run lost meanwhile (then nothing is kept)."""
	if not still_ours(job.name, delivery):
		raise JobSuperseded(job.name)
	transactions.hand_over_before_save(job)
	keep = job.verbose_logging
	fields = dict(
		conflict_count=job.get("conflict_count") or 0,
		operation=outcome.operation or job.operation,
		target_document_type=outcome.target_document_type or job.target_document_type,
		target_document_name=outcome.target_document_name or job.target_document_name,
		context=job.context,
		diff_summary=json.dumps(outcome.diff, default=str) if outcome.diff is not None else None,
		current_data=to_json(outcome.before) if keep else None,
		updated_data=to_json(outcome.after) if keep else None,
		error_message=outcome.reason or None,
		multiple_target_documents=job.multiple_target_documents,
		**timing(started),
	)
	if outcome.status == S.CONFLICT:
		states.mark_conflict(job, **fields)
	else:
		states.mark_done(job, outcome.status, **fields)


def record_deferral(job, error: SyncJobRetryAfter, started: float, delivery: str | None) -> bool:
	"""The controller asked to wait: defer the job, or fail it once it used up `max_deferrals`.
	False when recovery took the job over meanwhile (nothing is recorded)."""
	if not still_ours(job.name, delivery):
		transactions.rollback()
		return False
	allowed = frappe.db.get_value("Sync Job Type", job.sync_job_type, "max_deferrals")
	if (job.deferral_count or 0) >= (allowed or 0):
		message = _("deferred {0} times (Max Deferrals), the last time for: {1}").format(
			job.deferral_count or 0, error.reason or _("no reason given")
		)
		return record_failure(job, error, started, delivery, message=message)
	transactions.hand_over_before_save(job)
	states.defer(job, error.seconds, error.reason, **timing(started))
	return True


def record_failure(
	job,
	error: BaseException,
	started: float,
	delivery: str | None,
	timed_out: bool = False,
	message: str | None = None,
) -> bool:
	"""Record a failure (after the target's writes were rolled back); retries per the retry policy.
	False when recovery took the job over meanwhile (nothing is recorded)."""
	if not still_ours(job.name, delivery):
		transactions.rollback()
		return False
	transactions.hand_over_before_save(job)
	timed_out = timed_out or isinstance(error, SyncJobTimeout) or is_rq_timeout(error)
	fields = timing(started)
	snapshots = job.flags.get("snapshots")
	if snapshots:
		fields["current_data"], fields["updated_data"] = map(to_json, snapshots)
	text = message or failure_message(job, error, timed_out)
	if timed_out:
		fields["error_signature"], fields["error_title"] = error_signature("Timeout", text)
	elif message:
		fields["error_signature"], fields["error_title"] = error_signature("SyncJobRetryAfter", text)
	else:
		fields["error_signature"], fields["error_title"] = signature_of(error)
	states.mark_failed(
		job,
		text,
		retryable=timed_out or message is not None or retry.is_retryable(error),
		**fields,
	)
	return True


FRAMEWORK_MODULES = ("sync_tweaks.", "frappe.", "rq.", "pymysql.", "redis.", "werkzeug.")


def signature_of(error: BaseException) -> tuple[str, str]:
	"""The error signature of an exception: its type, message and the innermost controller frame."""
	frames = []
	tb = error.__traceback__
	while tb is not None:
		module = tb.tb_frame.f_globals.get("__name__", "")
		path = tb.tb_frame.f_code.co_filename
		if "site-packages" not in path and "/lib/python" not in path:
			frames.append((module, tb.tb_frame.f_code.co_name))
		tb = tb.tb_next
	frame = controller_frame(frames, FRAMEWORK_MODULES)
	return error_signature(type(error).__name__, str(error), frame)


def still_ours(name: str, delivery: str | None) -> bool:
	"""Whether this run still owns the job: Started under `delivery` (read under a row lock; plain
	SQL, since this runs for every job). Recovery may have failed it and a retry taken it since."""
	rows = frappe.db.sql("select status, job_id from `tabSync Job` where name=%s for update", name)
	return bool(rows) and rows[0][0] == S.STARTED.value and (rows[0][1] or None) == delivery


def failure_message(job, error: BaseException, timed_out: bool) -> str:
	if timed_out:
		return _("timed out after {0} s").format(job.timeout)
	if isinstance(error, SyncJobFatalError | SyncControllerError):
		return str(error) or error.__class__.__name__
	return frappe.get_traceback()


def timing(started: float) -> dict:
	return {"ended_at": clock.site_now(), "time_taken": round(time.monotonic() - started, 6)}


def is_rq_timeout(error: BaseException) -> bool:
	"""RQ's own job timeout (the batch's budget) also counts as the job timing out."""
	return isinstance(error, JobTimeoutException)


def current_delivery() -> str | None:
	"""The running RQ job's id without Frappe's site prefix (`site::id` in v15, `site||id` in v16)."""
	job = rq.get_current_job()
	if not job:
		return None
	for separator in ("::", "||"):
		if separator in job.id:
			return job.id.rsplit(separator, 1)[1]
	return job.id


def end_process(limit):
	"""A controller swallowed every timeout for OVERRUN_SECONDS: end the work horse before recovery
	could free its slot (maintenance records the job as timed out). Outside RQ, keep raising."""
	if not rq.get_current_job():
		return
	job_name = getattr(frappe.local, "sync_tweaks_running_job", None)
	delivery = current_delivery()
	try:
		if job_name and delivery:
			frappe.cache().set(overrun_mark(delivery), job_name, ex=3600)
	finally:
		os._exit(1)


def overrun_mark(delivery: str) -> str:
	"""Redis key saying the process of `delivery` was ended for an overrun (value: the job's name)."""
	return frappe.cache().make_key(OVERRUN_MARK + delivery)
