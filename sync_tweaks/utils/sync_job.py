"""Public Python API: create and enqueue Sync Jobs.

Example (a doc hook):

	from sync_tweaks.utils.sync_job import enqueue_sync_job

	def on_update(doc, method=None):
		enqueue_sync_job("Customer to SAP", source_doc=doc, trigger_type="Document Hook", triggered_by_doc=doc)

Jobs are inserted in the caller's transaction and pushed to RQ only after it commits: if it rolls
back, no job exists and nothing runs. Nothing here commits. A request made while a sync job writes
its target, for the reverse job of the same pair, is an echo: no job, None (`sync_tweaks.echo`).
"""

from datetime import timedelta
from typing import Any

import frappe
from frappe import _
from frappe.utils import now_datetime

from sync_tweaks import echo
from sync_tweaks.engine.request import (
	BEHAVIOUR_FLAGS,
	TRIGGER_FIELDS,
	RequestError,
	SyncJobRequest,
	concurrency_key,
	identity,
	make_title,
)
from sync_tweaks.engine.request import (
	IDENTITY_FIELDS as IDENTITY,
)
from sync_tweaks.engine.status import S
from sync_tweaks.exceptions import InvalidSyncJobRequest, SyncJobError
from sync_tweaks.queue import after_commit, lines, states
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import get_job_type

BULK_CHUNK = 1000


def create_sync_job(sync_job_type: str | dict | None = None, **params: Any):
	"""Create a Sync Job and return the document.

	Args:
		sync_job_type: the Sync Job Type name, or one dict holding every parameter.
		params: source_doc | source_document_type + source_document_name, operation, context (dict),
			target_doc | target_document_type + target_document_name, parent_sync_job, queue, timeout,
			retry_delay, max_retries, trigger_type, triggered_by_doc | triggered_by_document_type +
			triggered_by_document_name, trigger_document_timestamp, queue_on_insert, dry_run,
			insert_enabled, update_enabled, delete_enabled, update_without_changes_enabled.
			Unset values come from the Sync Job Type.

	Returns:
		The Sync Job: Pending, or Waiting (queued once its slot is free) with `queue_on_insert`; an
		identical job that has not started yet when the type coalesces duplicates; None for the echo
		of a sync job's own write (the reverse job of the pair it is writing, see sync_tweaks.echo).
	"""
	request = parse_request(sync_job_type, params)
	if request.queue_on_insert is None:
		request = request.replace(queue_on_insert=default_queue_on_insert())
	return insert_job(request)


def enqueue_sync_job(sync_job_type: str | dict | None = None, **params: Any):
	"""Create a Sync Job and queue it (after the caller's commit); same parameters as create_sync_job."""
	request = parse_request(sync_job_type, params)
	if request.queue_on_insert is None:
		request = request.replace(queue_on_insert=True)
	return insert_job(request)


def enqueue_sync_jobs(sync_job_type: str, sources: list, **common: Any) -> list[str]:
	"""Queue one job per source (names, documents or dicts of parameters) with batched inserts.

	Returns the job names (existing ones where a source coalesced into a job not started yet); a
	source whose request is the echo of the running job's write (sync_tweaks.echo) gets no job.
	"""
	job_type = get_job_type(sync_job_type)
	names: list[str] = []
	show_progress = not getattr(frappe.local, "request", None) and len(sources) > BULK_CHUNK
	for start in range(0, len(sources), BULK_CHUNK):
		chunk = sources[start : start + BULK_CHUNK]
		requests = [_bulk_request(sync_job_type, source, common) for source in chunk]
		requests = [request for request in requests if not echo.is_echo(request, job_type)]
		if requests:
			names.extend(_bulk_insert(job_type, requests))
		if show_progress:
			frappe.utils.update_progress_bar(_("Enqueueing Sync Jobs"), start + len(chunk) - 1, len(sources))
	if show_progress:
		print()
	after_commit.request()
	return names


def parse_request(sync_job_type, params: dict) -> SyncJobRequest:
	"""The checked request; a clean InvalidSyncJobRequest for anything malformed."""
	if isinstance(sync_job_type, dict):
		if params:
			frappe.throw(
				_("Pass the parameters either as one dict or as keywords, not both"), InvalidSyncJobRequest
			)
		params = dict(sync_job_type)
	else:
		params = {"sync_job_type": sync_job_type, **params}
	try:
		return SyncJobRequest.parse(params)
	except RequestError as e:
		frappe.throw(_(e.template).format(*e.args_), InvalidSyncJobRequest)


def insert_job(request: SyncJobRequest):
	"""Insert the job `request` describes, or merge it into an identical job not started yet;
	None when it is the echo of the running job's write."""
	job_type = get_job_type(request.sync_job_type)
	if echo.is_echo(request, job_type):
		return None
	validate_queue(request.queue)
	if job_type.coalesce_duplicates and not request.parent_sync_job:
		existing = find_duplicate(request, job_type)
		if existing:
			return coalesce(existing, request, job_type)
	return _insert(request, job_type)


def _insert(request: SyncJobRequest, job_type):
	job = frappe.get_doc({"doctype": "Sync Job", **request.job_fields(job_type)})
	job.flags.ignore_permissions = True
	job.flags.from_request = True
	# the source may be deleted already (its Deleted Document copy is used) or be a context-only job
	job.flags.ignore_links = True
	job.insert()
	return job


def child_request(parent, target: dict) -> SyncJobRequest:
	"""The request of one relayed child: the parent's source, flags, queue, limits and trigger."""
	context = {**parent.get_context(), **(target.get("context") or {})}
	return SyncJobRequest(
		sync_job_type=parent.sync_job_type,
		parent_sync_job=parent.name,
		sync_backfill=parent.get("sync_backfill"),
		source_document_type=parent.source_document_type,
		source_document_name=parent.source_document_name,
		operation=target["operation"],
		target_document_type=target["target_document_type"],
		target_document_name=target["target_document_name"],
		context=frappe.as_json(context) if context else None,
		queue=parent.queue,
		timeout=parent.timeout,
		retry_delay=parent.retry_delay,
		max_retries=parent.max_retries,
		queue_on_insert=True,
		**{key: parent.get(key) for key in TRIGGER_FIELDS},
		**{key: bool(parent.get(key)) for key in BEHAVIOUR_FLAGS},
	)


def dry_run_request(job) -> SyncJobRequest:
	"""The request of a dry-run copy of stored job `job` (same source, target, context and flags)."""
	known_target = bool(job.target_document_name)
	return SyncJobRequest(
		sync_job_type=job.sync_job_type,
		source_document_type=job.source_document_type,
		source_document_name=job.source_document_name,
		operation=job.operation if known_target or job.operation == "Insert" else "",
		target_document_type=job.target_document_type if known_target else None,
		target_document_name=job.target_document_name,
		context=job.context,
		trigger_type="Manual",
		queue_on_insert=True,
		**{key: bool(job.get(key)) for key in BEHAVIOUR_FLAGS},
	).replace(dry_run=True)


def find_duplicate(request: SyncJobRequest, job_type):
	"""A job of the same type, source, target, operation, context and flags that has not started yet,
	or that waits for its retry (which reads the latest source too)."""
	if not request.source_document_name:
		return None
	statuses = [S.WAITING.value, S.FAILED.value] if request.queue_on_insert else [S.PENDING.value]
	candidates = frappe.get_all(
		"Sync Job",
		filters={
			"sync_job_type": request.sync_job_type,
			"source_document_type": request.source_document_type or job_type.source_document_type,
			"source_document_name": request.source_document_name,
			"status": ["in", statuses],
		},
		fields=["name", "status", "due_at", *IDENTITY],
		order_by="creation asc",
	)
	wanted = identity(request.job_fields(job_type))
	for row in candidates:
		if (row.status != S.FAILED.value or row.due_at) and identity(row) == wanted:
			return row.name
	return None


def coalesce(name: str, request: SyncJobRequest, job_type):
	"""Merge `request` into job `name`: count it and keep the newest trigger."""
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if job.status not in (S.PENDING.value, S.WAITING.value) and not (
		job.status == S.FAILED.value and job.due_at
	):
		return _insert(request, job_type)  # it started meanwhile
	fields = {key: request.as_doc_fields().get(key) for key in TRIGGER_FIELDS}
	fields["coalesced_count"] = (job.coalesced_count or 0) + 1
	job.db_set(fields)
	return job


def validate_queue(queue: str | None):
	from frappe.utils.background_jobs import get_queues_timeout

	if queue and queue not in get_queues_timeout():
		frappe.throw(
			_("Queue {0} does not exist; use one of {1}").format(queue, ", ".join(get_queues_timeout())),
			InvalidSyncJobRequest,
		)


def default_queue_on_insert() -> bool:
	configured = frappe.conf.get("sync_job_queue_on_insert")
	if configured is not None:
		return bool(configured)
	return not frappe.conf.developer_mode


def _bulk_request(sync_job_type: str, source, common: dict) -> SyncJobRequest:
	if isinstance(source, str):
		params = {"source_document_name": source}
	elif isinstance(source, dict):
		params = dict(source)
	else:
		params = {"source_doc": source}
	params = {"queue_on_insert": True, **common, **params}
	return parse_request(sync_job_type, params)


def _bulk_insert(job_type, requests: list[SyncJobRequest]) -> list[str]:
	"""Insert a chunk of jobs with one multi-row insert (coalescing into open duplicates first)."""
	for request in requests:
		validate_queue(request.queue)
	coalescing = bool(job_type.coalesce_duplicates)
	names, new_rows = [], []
	open_jobs = _open_duplicates(job_type, requests) if coalescing else {}
	all_fields = [request.job_fields(job_type) for request in requests]
	keys = [
		concurrency_key(job_type, f["source_document_type"], f["source_document_name"]) for f in all_fields
	]
	# jobs of a key that has open jobs wait behind them; the first new job of a free key heads its line
	taken = lines.lined_up(list({key for key in keys if key}))
	now = now_datetime()
	user = frappe.session.user
	for i, (request, fields, key) in enumerate(zip(requests, all_fields, keys, strict=True)):
		duplicate = (bool(request.queue_on_insert), fields["source_document_name"], identity(fields))
		found = open_jobs.get(duplicate)
		if isinstance(found, dict):  # a job of this very chunk, not inserted yet
			found["coalesced_count"] += 1
			names.append(found["name"])
			continue
		if found:
			frappe.db.sql(
				"update `tabSync Job` set coalesced_count=coalesced_count+1, modified=%s where name=%s",
				(now, found),
			)
			names.append(found)
			continue
		fields.update(
			states.initial(request.queue_on_insert, not key or key not in taken),
			name=frappe.generate_hash(length=10),
			concurrency_key=key,
			# distinct timestamps keep creation order exact inside a chunk
			creation=now + timedelta(microseconds=i),
			modified=now + timedelta(microseconds=i),
			owner=user,
			modified_by=user,
			docstatus=0,
			idx=0,
			retry_count=0,
			coalesced_count=0,
		)
		fields["title"] = make_title(frappe._dict(fields))
		if key and request.queue_on_insert:
			taken.add(key)
		states.announce_new(frappe._dict(fields))
		if coalescing and fields["source_document_name"]:
			open_jobs[duplicate] = fields
		new_rows.append(fields)
		names.append(fields["name"])
	if new_rows:
		columns = list(new_rows[0])
		frappe.db.bulk_insert("Sync Job", columns, [[row.get(c) for c in columns] for row in new_rows])
	return names


def _open_duplicates(job_type, requests: list[SyncJobRequest]) -> dict:
	"""Jobs not started yet (or waiting for a retry) that requests of this chunk merge into, as
	find_duplicate chooses them: Pending for Pending requests, Waiting or a pending retry otherwise."""
	sources = list({request.source_document_name for request in requests if request.source_document_name})
	if not sources:
		return {}
	rows = frappe.get_all(
		"Sync Job",
		filters={
			"sync_job_type": job_type.name,
			"source_document_name": ["in", sources],
			"status": ["in", [S.PENDING.value, S.WAITING.value, S.FAILED.value]],
		},
		fields=["name", "status", "due_at", "source_document_name", *IDENTITY],
		order_by="creation asc",
	)
	found = {}
	for row in rows:
		if row.status == S.FAILED.value and not row.due_at:
			continue
		wants_queue = row.status != S.PENDING.value
		found.setdefault((wants_queue, row.source_document_name, identity(row)), row.name)
	return found


# HTTP endpoints: names only (never document objects), permission-checked


@frappe.whitelist(methods=["POST"])
def enqueue(
	sync_job_type: str,
	source_document_name: str | None = None,
	operation: str | None = None,
	context: str | dict | None = None,
	target_document_name: str | None = None,
	dry_run: bool | int | str = 0,
) -> dict:
	"""Create and queue a job from Desk or the REST API.

	Needs create on Sync Job, read on the source, and for a forced operation the matching
	permission on the target (create / write / delete), since jobs write with elevated rights.
	"""
	frappe.has_permission("Sync Job", "create", throw=True)
	if not isinstance(sync_job_type, str) or not frappe.db.exists("Sync Job Type", sync_job_type):
		frappe.throw(_("Sync Job Type {0} does not exist").format(sync_job_type), SyncJobError)
	source_type, target_type = frappe.db.get_value(
		"Sync Job Type", sync_job_type, ["source_document_type", "target_document_type"]
	)
	if source_document_name:
		if not frappe.db.exists(source_type, source_document_name):
			frappe.throw(
				_("{0} {1} does not exist").format(source_type, source_document_name),
				frappe.DoesNotExistError,
			)
		if not frappe.has_permission(source_type, "read", doc=source_document_name):
			frappe.throw(
				_("Not permitted to read {0} {1}").format(source_type, source_document_name),
				frappe.PermissionError,
			)
	request = parse_request(
		sync_job_type,
		{
			"source_document_type": source_type,
			"source_document_name": source_document_name,
			"operation": operation,
			"context": context,
			"target_document_name": target_document_name,
			"dry_run": dry_run,
			"trigger_type": "API" if getattr(frappe.local, "request", None) else "Manual",
			"queue_on_insert": True,
		},
	)
	check_target_permission(target_type, request.operation, request.target_document_name)
	job = insert_job(request)
	return {"name": job.name, "status": job.status}


def check_target_permission(target_type: str | None, operation: str, target_name: str | None):
	"""A forced operation needs the caller's own permission for it on the target."""
	if not operation or not target_type:
		return
	ptype = {"Insert": "create", "Update": "write", "Delete": "delete"}[operation]
	doc = target_name if target_name and frappe.db.exists(target_type, target_name) else None
	if not frappe.has_permission(target_type, ptype, doc=doc):
		frappe.throw(
			_("Not permitted to {0} {1} {2}").format(_(ptype), target_type, target_name or ""),
			frappe.PermissionError,
		)


@frappe.whitelist()
def get_status(name: str) -> dict:
	"""Status, error and diff of a job, for Desk dialogs that follow a job live."""
	from sync_tweaks.engine.status import has_settled, is_final
	from sync_tweaks.utils.diff_html import render_diff

	job = frappe.get_doc("Sync Job", name)
	job.check_permission("read")
	return {
		"name": job.name,
		"status": job.status,
		"is_final": is_final(job.status),
		"settled": has_settled(job.status),
		"error_message": job.error_message,
		"diff_summary": frappe.parse_json(job.diff_summary) if job.diff_summary else None,
		"diff_html": render_diff(job.diff_summary),
		"children": frappe.parse_json(job.multiple_target_documents)
		if job.multiple_target_documents
		else None,
	}
