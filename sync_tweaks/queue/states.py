"""The one home of every status change.

Each entry checks the status table, sets the side fields of its state, asks for the post-commit
work (free the slot, dispatch the key's next job) and publishes the change to Desk. Nothing else in
sync_tweaks writes a Sync Job's `status` (a test enforces it). The caller commits.
"""

import json

import frappe
from frappe import _
from frappe.model import document
from frappe.utils import now

from sync_tweaks.backfill import states as backfill_states
from sync_tweaks.engine.signature import error_signature
from sync_tweaks.engine.status import ACTIVE, SETTLED, S, can_transition, is_done
from sync_tweaks.exceptions import SyncJobTransitionError
from sync_tweaks.queue import after_commit, breaker, clock, lines, ratelimit, retry

REALTIME_EVENT = "sync_job_status"
CHILDREN_EVENT = "sync_job_children"
# fields only the entries below write; a document save keeps their stored values
STATE_FIELDS = (
	"status",
	"job_id",
	"next_in_key",
	"due_at",
	"deadline_at",
	"retry_after",
	"retry_count",
	"started_at",
	"ended_at",
	"time_taken",
	"error_message",
	"cancel_reason",
	"conflict_count",
	"conflict_decisions",
	"deferred_reason",
	"deferral_count",
	"error_signature",
	"error_title",
	"children_done_at",
	"backfill_outcome",  # written by the backfill's roll-up
	"sync_backfill",  # set when the job is inserted, never by a save
)


def initial(queue_on_insert: bool, key_is_free: bool) -> dict:
	"""Status fields of a new job: Pending, or Waiting (marked next in line when its key is free)."""
	if not queue_on_insert:
		return {"status": S.PENDING.value, "next_in_key": 0}
	return {"status": S.WAITING.value, "next_in_key": int(key_is_free)}


def announce_new(job):
	"""A job inserted as Waiting: dispatch after commit, and ask for its key when it waits behind
	other jobs of its key (the job holding the key may end before this transaction commits)."""
	if job.status == S.WAITING.value:
		after_commit.request(keys=[job.concurrency_key] if not job.next_in_key else ())


def mark_waiting(job, **fields):
	"""Pending (start), Failed (retry) or Queued (hand back) -> Waiting, in its key's line."""
	_write(job, S.WAITING, retry_after=None, due_at=0, **fields)


def mark_queued(names: list[str], job_id: str | None, in_hand: bool = False):
	"""Waiting -> Queued for jobs the dispatcher holds under lock and slot (bulk: one statement).
	`in_hand`: the running delivery `job_id` claims them next, and its Started mark clears the
	document cache and tells Desk (a drain's jobs are Queued for milliseconds)."""
	frappe.db.sql(
		"""update `tabSync Job` set status=%(queued)s, job_id=%(job_id)s,
		deadline_at=%(deadline)s, modified=%(now)s, modified_by=%(user)s
		where name in %(names)s and status=%(waiting)s""",
		{
			"queued": S.QUEUED.value,
			"waiting": S.WAITING.value,
			"job_id": job_id,
			# a Queued job whose RQ job is not there by then was lost on its way (see maintenance)
			"deadline": clock.now() + PUSH_GRACE_SECONDS,
			"now": now(),
			"user": frappe.session.user,
			"names": tuple(names),
		},
	)
	for name in [] if in_hand else names:
		frappe.clear_document_cache("Sync Job", name)
		publish(frappe._dict(name=name, status=S.QUEUED.value), list_update=True)


def set_delivery(names: list[str], job_id: str):
	"""Record the RQ job that may run these Queued jobs."""
	frappe.db.sql(
		"update `tabSync Job` set job_id=%(job_id)s where name in %(names)s and status=%(queued)s",
		{"job_id": job_id, "names": tuple(names), "queued": S.QUEUED.value},
	)


def mark_started(job, user: str | None = None, at: float | None = None):
	"""Queued -> Started by the delivery recorded on the job, which the caller holds locked, at epoch
	`at` (the moment a rate limit counted it); its deadline is when its timeout ends. One statement, like Queued (the per-job cost of a batch):
	document hooks run for the outcomes, not for these two."""
	_check(job, S.STARTED)
	fields = {
		"status": S.STARTED.value,
		"started_at": clock.site_time_at(at) if at else clock.site_now(),
		"deadline_at": clock.now() + (job.timeout or 0),
		"ended_at": None,
		"time_taken": None,
		"error_message": None,
		"modified": now(),
		"modified_by": user or frappe.session.user,  # the user it runs as
	}
	assignments = ", ".join(f"`{field}`=%({field})s" for field in fields)
	frappe.db.sql(f"update `tabSync Job` set {assignments} where name=%(name)s", {**fields, "name": job.name})
	job.update(fields)
	frappe.clear_document_cache("Sync Job", job.name)
	publish(job, list_update=True)
	if job.concurrency_key:
		after_commit.refresh_slot(job.concurrency_key, job.name, job.timeout)


def mark_done(job, status: S, **fields):
	"""Started -> Finished, Skipped, Relayed or No Target."""
	_write(job, status, retry_after=None, due_at=0, deadline_at=0, **fields)
	breaker.record_run(job, failed=False)


def mark_conflict(job, **fields):
	"""Started -> Conflict (Stop for Review): nothing was written; the job frees its slot and its
	line (newer jobs of the key run; they stop on the same edit), and waits for `resolve`."""
	_write(job, S.CONFLICT, retry_after=None, due_at=0, deadline_at=0, **fields)
	breaker.record_run(job, failed=False)  # a run that ends other than Failed resets the breaker


def resolve(job, decisions: dict):
	"""Conflict -> Waiting with a person's per-field decisions; the job runs again and applies them."""
	_write(job, S.WAITING, retry_after=None, due_at=0, error_message=None, conflict_decisions=decisions)


def mark_failed(job, error_message: str, retryable: bool = True, **fields):
	"""Started -> Failed; a retryable failure with retries left is due again per the retry policy.
	The failure's cause is recorded as `error_signature` (callers with the exception pass it)."""
	if not fields.get("error_signature"):
		fields["error_signature"], fields["error_title"] = error_signature("", error_message)
	# a job of a backfill canceled (or deleted) while it ran does not come back
	retryable = retryable and not backfill_states.job_refusal(job)
	_write(job, S.FAILED, error_message=error_message, deadline_at=0, **retry.plan(job, retryable), **fields)
	breaker.record_run(job, failed=True)


def defer(job, seconds: float, reason: str, **fields):
	"""Started -> Waiting until `seconds` from now (SyncJobRetryAfter): no retry counted; it stays
	first in its key's line, and the waker (or maintenance) dispatches it when it is due."""
	_write(
		job,
		S.WAITING,
		job_id=None,
		deadline_at=0,
		deferred_reason=(reason or "")[:1000] or None,
		deferral_count=(job.deferral_count or 0) + 1,
		**retry.wait_fields(seconds),
		**fields,
	)
	# a job without a key is found by no key dispatch; the waker wakes LEAD early, i.e. when it is due
	ratelimit.arm(job.queue, job.due_at + ratelimit.LEAD)


def requeue(job):
	"""Queued -> Waiting (its RQ job vanished or its batch died), keeping its place in line."""
	_write(job, S.WAITING, job_id=None, deadline_at=0)


def cancel(job, reason: str | None = None):
	"""Pending, Waiting, Queued or Failed -> Canceled; a canceled job never runs."""
	_write(job, S.CANCELED, cancel_reason=(reason or "")[:1000] or None, retry_after=None, due_at=0)


def cancel_many(names: list[str], reason: str | None = None) -> int:
	"""Cancel many Pending, Waiting, Queued or Failed jobs in one statement (a backfill's cancel);
	like `mark_started`, document hooks do not run. Returns how many were canceled."""
	cancellable = [S.PENDING.value, S.WAITING.value, S.QUEUED.value, S.FAILED.value]
	rows = frappe.db.sql(
		"""select name, status, due_at, concurrency_key, parent_sync_job, sync_backfill, sync_job_type
		from `tabSync Job` where name in %(names)s and status in %(cancellable)s for update""",
		{"names": tuple(names), "cancellable": tuple(cancellable)},
		as_dict=True,
	)
	if not rows:
		return 0
	frappe.db.sql(
		"""update `tabSync Job` set status=%(canceled)s, cancel_reason=%(reason)s, retry_after=null,
		due_at=0, modified=%(now)s, modified_by=%(user)s where name in %(names)s""",
		{
			"canceled": S.CANCELED.value,
			"reason": (reason or "")[:1000] or None,
			"now": now(),
			"user": frappe.session.user,
			"names": tuple(row.name for row in rows),
		},
	)
	keys, release, parents, backfills = [], [], [], []
	for row in rows:
		frappe.clear_document_cache("Sync Job", row.name)
		before = frappe._dict(status=row.status, next_in_key=0, due_at=row.due_at)
		row.status = S.CANCELED.value
		followups = _followups(row, before)
		keys += followups.get("keys", [])
		release += followups.get("release", [])
		parents.append(row.parent_sync_job)
		backfills.append(row.sync_backfill)
		publish(row)
	after_commit.announce("list_update", {"doctype": "Sync Job", "user": frappe.session.user}, "Sync Job")
	after_commit.request(keys=keys, release=release, parents=parents, backfills=backfills)
	return len(rows)


def mark_children_done(job, error: str | None = None):
	"""A relayed parent whose children are all done: record when (its on_children_done ran, or
	failed with `error`, which goes to its error message). The status stays Relayed."""
	fields = {"children_done_at": clock.site_now()}
	if error:
		fields["error_message"] = error
	job.db_set(fields)
	publish(job)


def _check(job, to: S):
	if not can_transition(job.status, to):
		frappe.throw(
			_("Cannot move Sync Job {0} from {1} to {2}").format(job.name, _(job.status), _(str(to))),
			SyncJobTransitionError,
		)


def _write(job, to: S, **fields):
	_check(job, to)
	before = frappe._dict(status=job.status, next_in_key=job.next_in_key, due_at=job.due_at)
	fields["status"] = to.value
	if to == S.WAITING:
		fields["next_in_key"] = int(lines.key_is_free(job.concurrency_key, job.name))
	if is_frappes_db_set(job):
		_store(job, fields)
	else:
		job.db_set(fields)  # a site's own db_set (override_doctype_class, a patch) sees the change
	publish(job, list_update=True)
	# even an empty request dispatches after commit: a job that ends frees room in RQ
	after_commit.request(**_followups(job, before))
	if job.get("parent_sync_job") and is_done(job.status, job.due_at):
		after_commit.request(parents=[job.parent_sync_job])
	if job.get("sync_backfill") and (to in SETTLED or S(before.status) in SETTLED):
		after_commit.request(backfills=[job.sync_backfill])  # its roll-up counts the change


def is_frappes_db_set(job) -> bool:
	"""Whether `job.db_set` is Frappe's own (`_store` does what it does). Judged by where its code
	lives, so an app's patch of Document.db_set is seen whenever it was applied."""
	code = getattr(type(job).db_set, "__code__", None)
	return bool(code) and code.co_name == "db_set" and code.co_filename == document.__file__


def _store(job, fields: dict):
	"""`job.db_set(fields)` in one plain UPDATE: the document hooks db_set runs (`before_change`,
	`on_change`: notifications, webhooks on Sync Job) see these changes as they would; the query
	builder db_set goes through cost every job more than the statement itself."""
	job.update(fields)
	if (job.doctype, job.name) not in (frappe.flags.get("currently_saving") or ()):
		job.modified, job.modified_by = now(), frappe.session.user
	if not job.get_doc_before_save():
		job.load_doc_before_save()
	job.run_method("before_change")
	values = {**fields, "modified": job.modified, "modified_by": job.modified_by}
	assignments = ", ".join(f"`{field}`=%({field})s" for field in values)
	frappe.db.sql(
		f"update `tabSync Job` set {assignments} where name=%(name)s",
		{**{field: _column_value(value) for field, value in values.items()}, "name": job.name},
	)
	frappe.clear_document_cache("Sync Job", job.name)
	job.run_method("on_change")


def _column_value(value):
	# as Frappe's save writes a JSON field
	return json.dumps(value, separators=(",", ":"), default=str) if isinstance(value, dict | list) else value


def _followups(job, before) -> dict:
	"""The post-commit work a change needs: a dispatch, a key to serve, a slot to free."""
	key = job.concurrency_key
	status = S(job.status)
	keys, release = [], []
	if S(before.status) in ACTIVE and status not in ACTIVE and key:
		release.append((key, job.name))  # frees the slot and serves the key
	elif before.status == S.WAITING and status != S.QUEUED and key:
		# leaves the line; a slot left under its name by a rolled-back dispatch goes with it
		release.append((key, job.name))
	elif before.status == S.FAILED and before.due_at:
		keys.append(key)  # no longer holds its line
	if status == S.WAITING and not job.next_in_key:
		keys.append(key)
	if status == S.FAILED and not job.due_at:
		keys.append(key)  # no retries left: the line moves on
	if status in (S.WAITING,) or keys or release:
		return {"keys": keys, "release": release}
	return {}


def publish(job, list_update: bool = False):
	"""Tell open forms (and with `list_update`, list views) that the job moved; forms follow
	`sync_job_status`, so Frappe's `doc_update` is not sent."""
	after_commit.announce(
		REALTIME_EVENT,
		{"name": job.name, "status": job.status, "sync_job_type": job.get("sync_job_type")},
		"Sync Job",
		job.name,
	)
	if job.get("parent_sync_job"):
		# the parent's form shows its children's progress
		after_commit.announce(
			CHILDREN_EVENT,
			{"name": job.parent_sync_job, "child": job.name, "status": job.status},
			"Sync Job",
			job.parent_sync_job,
		)
	if list_update:
		after_commit.announce(
			"list_update", {"doctype": "Sync Job", "name": job.name, "user": frappe.session.user}, "Sync Job"
		)


# a Queued job younger than this may still be on its way to RQ (pushed right after its commit)
PUSH_GRACE_SECONDS = 5
