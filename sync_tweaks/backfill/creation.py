"""Creating a backfill's jobs: a chunk of source documents at a time, each chunk one transaction.

The chunk's jobs and the moved cursor commit together, under the backfill's row lock: a creator that
dies loses only its open chunk, and whoever resumes (a new RQ job, maintenance, the Resume button,
the CLI) continues after the last committed one. Two creators at once are harmless: the second waits
for the lock and reads the cursor the first moved.
"""

import itertools
import json
import time

import frappe
import rq
from frappe import _
from frappe.utils import now_datetime
from rq.timeouts import JobTimeoutException

from sync_tweaks.backfill import rollup
from sync_tweaks.backfill.states import B, move, publish
from sync_tweaks.engine.rollup import CHANGING
from sync_tweaks.engine.status import OPEN, S
from sync_tweaks.exceptions import SyncJobError
from sync_tweaks.queue import clock, states
from sync_tweaks.utils.sync_job import enqueue_sync_jobs

CHUNK = 1000  # documents per chunk; site config `sync_backfill_chunk_size` overrides it
# a creator works this long, then hands the rest to a new RQ job (workers serve other work meanwhile)
SLICE_SECONDS = 5
CREATOR_TIMEOUT = 300
# a Creating backfill whose heartbeat is older than this has lost its creator: maintenance resumes it
STALL_SECONDS = 120
# chunks in a row that may meet a deadlock or a lost connection before the backfill fails
TRANSIENT_LIMIT = 5
CANCELLABLE = (S.PENDING.value, S.WAITING.value, S.QUEUED.value)


def start(backfill, creator: bool = True):
	"""Draft -> Creating: count the matching documents and start the creator (after commit). The
	CLI creates the chunks itself, in the foreground, under the token this returns."""
	move(
		backfill,
		B.CREATING,
		started_at=now_datetime(),
		heartbeat_at=clock.now(),
		total_documents=estimate(backfill),
		error_message=None,
	)
	return enqueue_creator(backfill, push=creator)


def resume(backfill):
	"""A Failed backfill, or one whose creator stopped: continue after the last committed chunk,
	with a new creator chain put ahead of the queue's backlog."""
	if backfill.status == B.FAILED.value:  # a person resumes: the error and its count start afresh
		move(backfill, B.CREATING, heartbeat_at=clock.now(), error_message=None, transient_errors=0)
	else:  # a takeover keeps counting transient errors (they fail the backfill at TRANSIENT_LIMIT)
		backfill.db_set("heartbeat_at", clock.now())
		publish(backfill.name)
	enqueue_creator(backfill, at_front=True)


def cancel(backfill, reason: str | None = None):
	"""Stop creating jobs and cancel the backfill's jobs that have not started: the first chunk
	here, the rest after commit in an RQ job (and, should that be lost, by maintenance); a job
	claimed meanwhile is canceled by its claim (`states.job_refusal`)."""
	move(
		backfill,
		B.CANCELED,
		cancel_reason=(reason or "")[:1000] or None,
		ended_at=now_datetime(),
		creator_token=None,
	)
	cancel_open_jobs(backfill.name, rounds=1, commit=False)
	run_later("cancel_open_jobs", backfill, at_front=True)


def enqueue_creator(backfill, push: bool = True, token: str | None = None, at_front: bool = False) -> str:
	"""Make a new creator chain the only one (a new token, written under the caller's row lock; an
	older chain stops at its next chunk) and, with `push`, start it after commit (`at_front`: ahead
	of the queue's backlog, for a resume). `token`: a chain handing its rest to its next RQ job keeps
	its own."""
	fields = {}
	if not token:
		token = fields["creator_token"] = frappe.generate_hash(length=12)
	if push:
		# remembered, so that a resume can tell a creator still waiting in the queue from a lost one
		fields["creator_job"] = f"sync-backfill-{backfill.name}-{frappe.generate_hash(length=8)}"
		run_later("create_jobs", backfill, at_front=at_front, job_id=fields["creator_job"], token=token)
	if fields:
		backfill.db_set(fields, update_modified=False)
	return token


def run_later(function: str, backfill, **kwargs):
	"""Run `function` of this module for `backfill` in an RQ job of its type's queue, after commit."""
	frappe.enqueue(
		f"sync_tweaks.backfill.creation.{function}",
		queue=queue_of(backfill),
		timeout=CREATOR_TIMEOUT,
		enqueue_after_commit=True,
		backfill=backfill.name,
		**kwargs,
	)


def creator_is_queued(backfill) -> bool:
	"""The chain's last RQ job still waits in its queue (it will run: no need to take over). A job
	whose worker died between taking it and starting it says "queued" but is in no queue."""
	from frappe.utils.background_jobs import get_job

	rq_job = get_job(backfill.creator_job) if backfill.creator_job else None
	if not rq_job or rq_job.get_status(refresh=False) != "queued":
		return False
	return rq_job.id in rq.Queue(rq_job.origin, connection=rq_job.connection).get_job_ids()


def queue_of(backfill) -> str:
	return frappe.db.get_value("Sync Job Type", backfill.sync_job_type, "queue") or "default"


def create_jobs(backfill: str, token: str | None = None):
	"""RQ entry: create chunks for SLICE_SECONDS, then hand the rest to a new RQ job of the chain."""
	started = time.monotonic()
	while create_chunk(backfill, token):
		if time.monotonic() - started > SLICE_SECONDS:
			enqueue_creator(frappe.get_doc("Sync Backfill", backfill), token=token)  # pushed at its commit
			return


def create_jobs_until_done(name: str, token: str | None = None):
	"""Create every remaining chunk in this process (the CLI, tests)."""
	while create_chunk(name, token):
		pass


def create_chunk(name: str, token: str | None = None) -> bool:
	"""Create the jobs of the next chunk and commit; True while documents remain for this chain
	(`token`: the chain's; None in tests and tools that take over)."""
	user = frappe.session.user
	try:
		more = _create_chunk(name, token)
		frappe.db.commit()
		if not more:
			rollup.fold(name)  # every job may have ended before the last chunk: Completed now
		return more
	except JobTimeoutException:
		frappe.db.rollback()
		raise
	except Exception as e:
		frappe.db.rollback()
		if is_transient(e) and count_transient(name, e) < TRANSIENT_LIMIT:
			# a deadlock or a lost connection: the backfill stays Creating (showing the error) and the
			# chunk is created again, by the CLI's next try or, once the heartbeat is old, maintenance
			frappe.log_error(title=f"Sync Backfill {name}: a chunk will be created again")
			frappe.db.commit()
			return False
		fail(name, e)
		return False
	finally:
		if frappe.session.user != user:
			frappe.set_user(user)


def is_transient(error: Exception) -> bool:
	"""A database error that the same statement may not meet again (deadlock, lock wait, connection)."""
	if isinstance(error, frappe.ValidationError | frappe.PermissionError | frappe.DoesNotExistError):
		return False
	classes = tuple(
		filter(None, (getattr(frappe, name, None) for name in ("QueryDeadlockError", "QueryTimeoutError")))
	)
	if isinstance(error, classes):
		return True
	for check in ("is_deadlocked", "is_timedout", "is_interface_error"):
		try:
			if getattr(frappe.db, check)(error):
				return True
		except (AttributeError, IndexError, TypeError):
			pass  # not a driver error, or a driver that cannot tell
	return False


def count_transient(name: str, error: Exception) -> int:
	"""Count one more chunk in a row that met a transient error, showing it; returns the count."""
	message = frappe.utils.strip_html(str(error)) or error.__class__.__name__
	frappe.clear_messages()
	count = (frappe.db.get_value("Sync Backfill", name, "transient_errors") or 0) + 1
	frappe.db.set_value(
		"Sync Backfill",
		name,
		{"transient_errors": count, "error_message": _("Retrying a chunk after: {0}").format(message)},
		update_modified=False,
	)
	return count


def _create_chunk(name: str, token: str | None) -> bool:
	backfill = frappe.get_doc("Sync Backfill", name, for_update=True)
	if backfill.status != B.CREATING.value:
		return False  # canceled, failed or done meanwhile
	if token and backfill.creator_token != token:
		return False  # a newer chain took over (a resume): this one ends
	if backfill.owner != "Administrator" and not frappe.db.get_value("User", backfill.owner, "enabled"):
		frappe.throw(
			_("The backfill's owner {0} is disabled or gone: its jobs would run as them").format(
				backfill.owner
			),
			SyncJobError,
		)
	# the backfill's owner selects the documents (their read permission applies) and owns the jobs
	frappe.set_user(backfill.owner)
	size = chunk_size()
	if backfill.document_limit:
		size = min(size, backfill.document_limit - (backfill.documents_selected or 0))
	seen, names = select_sources(backfill, size) if size > 0 else ([], [])
	jobs = enqueue_sync_jobs(backfill.sync_job_type, names, **job_params(backfill)) if names else []
	fields = {
		"documents_selected": (backfill.documents_selected or 0) + len(seen),
		"jobs_created": (backfill.jobs_created or 0) + len(set(jobs)),
		"last_source": seen[-1] if seen else backfill.last_source,
		"heartbeat_at": clock.now(),
	}
	if backfill.transient_errors:
		fields.update(transient_errors=0, error_message=None)
	limit_reached = backfill.document_limit and fields["documents_selected"] >= backfill.document_limit
	if len(seen) == size and size > 0 and not limit_reached:
		backfill.db_set(fields)
		publish(backfill.name)
		return True
	fields["creation_ended_at"] = now_datetime()
	fields["total_documents"] = fields["documents_selected"]  # the estimate was an upper bound
	fields["creator_token"] = None
	if fields["jobs_created"]:
		move(backfill, B.RUNNING, **fields)
	else:
		move(backfill, B.COMPLETED, ended_at=now_datetime(), **fields)
	return False


def chunk_size() -> int:
	return max(1, frappe.utils.cint(frappe.conf.get("sync_backfill_chunk_size")) or CHUNK)


def select_sources(backfill, size: int) -> tuple[list[str], list[str]]:
	"""The next `size` documents after the cursor (`seen`, in name order) and those of them that get
	a job: all of them, or for an apply those its dry run saw (that would change, with only_changes)
	and that the owner may read."""
	doctype = backfill.source_document_type
	after = backfill.last_source or ""
	if not backfill.applied_from:
		seen = frappe.get_list(
			doctype,
			filters=[*parse_filters(backfill.source_filters), ["name", ">", after]],
			order_by="name asc",
			limit_page_length=size,
			pluck="name",
			# a child-table filter joins the child rows: a document matching twice is still one
			distinct=True,
		)
		return seen, seen
	seen = frappe.db.sql_list(
		f"""select distinct source_document_name from `tabSync Job`
		where sync_backfill=%(dry_run)s and source_document_name > %(after)s
		{"and backfill_outcome in %(changing)s" if backfill.only_changes else ""}
		order by source_document_name limit %(size)s""",
		{"dry_run": backfill.applied_from, "after": after, "changing": CHANGING, "size": size},
	)
	readable = set(frappe.get_list(doctype, filters=[["name", "in", seen]], pluck="name")) if seen else set()
	return seen, [name for name in seen if name in readable]


def job_params(backfill) -> dict:
	return {
		"dry_run": bool(backfill.dry_run),
		"trigger_type": "Manual",
		"triggered_by_document_type": "Sync Backfill",
		"triggered_by_document_name": backfill.name,
		"sync_backfill": backfill.name,
	}


def parse_filters(value) -> list:
	"""Filters as a list of [field, operator, value] (a dict's `{field: value}` or `{field: [op, value]}`)."""
	try:
		filters = json.loads(value) if isinstance(value, str) and value.strip() else value
	except ValueError as e:
		frappe.throw(_("Source Filters are not valid JSON: {0}").format(e), SyncJobError)
	if not filters:
		return []
	if isinstance(filters, dict):
		return [
			[field, *condition] if isinstance(condition, list | tuple) else [field, "=", condition]
			for field, condition in filters.items()
		]
	if isinstance(filters, list) and all(isinstance(f, list | tuple) for f in filters):
		return [list(f) for f in filters]
	frappe.throw(
		_("Source Filters must be a JSON object or a list of [field, operator, value]"), SyncJobError
	)


def estimate(backfill) -> int:
	"""How many documents the backfill will select (before permissions), for the progress bar."""
	if backfill.applied_from:
		count = frappe.db.sql(
			f"""select count(distinct source_document_name) from `tabSync Job` where sync_backfill=%(name)s
			{"and backfill_outcome in %(changing)s" if backfill.only_changes else ""}""",
			{"name": backfill.applied_from, "changing": CHANGING},
		)[0][0]
	else:
		count = frappe.db.count(backfill.source_document_type, parse_filters(backfill.source_filters))
	return min(count, backfill.document_limit) if backfill.document_limit else count


def fail(name: str, error: Exception):
	"""The creator met an error: the backfill is Failed with it (resume continues at the cursor)."""
	frappe.log_error(title=f"Sync Backfill {name}: creating jobs failed")
	message = frappe.utils.strip_html(str(error)) or error.__class__.__name__
	frappe.clear_messages()
	try:
		backfill = frappe.get_doc("Sync Backfill", name, for_update=True)
		if backfill.status == B.CREATING.value:
			move(backfill, B.FAILED, error_message=message, heartbeat_at=clock.now())
		frappe.db.commit()
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title=f"Sync Backfill {name}: recording the failure failed")
		frappe.db.commit()


def cancel_open_jobs(backfill: str, limit: int = CHUNK, rounds: int = 0, commit: bool = True) -> int:
	"""Cancel the backfill's jobs that have not started, a chunk per round (and per transaction
	with `commit`), at most `rounds` chunks (0: all); returns how many."""
	canceled = 0
	reason = _("Sync Backfill {0} was canceled").format(backfill)
	for _round in itertools.count(1):
		names = frappe.db.sql_list(
			"""select name from `tabSync Job` where sync_backfill=%(name)s and backfill_outcome is null
			and (status in %(open)s or (status=%(failed)s and due_at > 0)) limit %(limit)s""",
			{"name": backfill, "open": CANCELLABLE, "failed": S.FAILED.value, "limit": limit},
		)
		if names:
			canceled += states.cancel_many(names, reason)
			if commit:
				frappe.db.commit()
		if not names or _round == rounds:
			return canceled


def resume_stalled(limit: int = 20) -> list[str]:
	"""Maintenance: Creating backfills whose creator stopped (worker killed, Redis flushed, stuck in
	a busy queue) go on, with a new chain (an old one still queued stops at its first chunk)."""
	names = frappe.get_all(
		"Sync Backfill",
		filters={"status": B.CREATING.value, "heartbeat_at": ["<", clock.now() - STALL_SECONDS]},
		pluck="name",
		order_by="heartbeat_at asc",
		limit=limit,
	)
	resumed = []
	for name in names:
		backfill = frappe.get_doc("Sync Backfill", name, for_update=True)
		# read again under the lock: a slow chunk may have committed (a fresh heartbeat) meanwhile
		stalled = backfill.status == B.CREATING.value and backfill.heartbeat_at < clock.now() - STALL_SECONDS
		# a chain still queued is waited for, but not for ever (a queue that never reaches it)
		abandoned = backfill.heartbeat_at < clock.now() - 5 * STALL_SECONDS
		if stalled and (abandoned or not creator_is_queued(backfill)):
			resume(backfill)
			resumed.append(name)
		frappe.db.commit()
	return resumed


def open_jobs(name: str) -> int:
	"""The backfill's jobs that have not ended (not started, running, or Failed with a retry due)."""
	return frappe.db.sql(
		"""select count(*) from `tabSync Job` where sync_backfill=%(name)s and backfill_outcome is null
		and (status in %(open)s or (status=%(failed)s and due_at > 0))""",
		{"name": name, "open": tuple(s.value for s in OPEN), "failed": S.FAILED.value},
	)[0][0]


def cancel_leftovers(limit: int = 20) -> list[str]:
	"""Maintenance: Canceled backfills with jobs still open (their cancel's RQ job was lost, or a
	job came back from a retry) have them canceled."""
	names = frappe.get_all(
		"Sync Backfill",
		filters={"status": B.CANCELED.value, "jobs_open": [">", 0]},
		pluck="name",
		order_by="folded_at asc",
		limit=limit,
	)
	for name in names:
		cancel_open_jobs(name)
		rollup.fold(name)
	return names


def maintain():
	"""Maintenance step: resume stalled creators, finish cancels, fold the roll-ups still moving."""
	resume_stalled()
	cancel_leftovers()
	rollup.fold_active()
