# Copyright (c) 2026, sync_tweaks contributors
# For license information, please see license.txt

import json

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils import add_days, get_datetime, now_datetime

from sync_tweaks.engine import status as st
from sync_tweaks.engine.request import RequestError, parse_operation, serialise_context
from sync_tweaks.exceptions import SyncJobError, SyncJobTransitionError

TITLE_LENGTH = 140
REALTIME_EVENT = "sync_job_status"
TYPE_DEFAULTS = ("queue", "timeout", "retry_delay", "max_retries")


class SyncJob(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		cancel_reason: DF.SmallText | None
		coalesced_count: DF.Int
		concurrency_key: DF.Data | None
		context: DF.JSON | None
		current_data: DF.Code | None
		delete_enabled: DF.Check
		diff_html: DF.HTML
		diff_summary: DF.JSON | None
		dry_run: DF.Check
		ended_at: DF.Datetime | None
		error_message: DF.Code | None
		insert_enabled: DF.Check
		job_id: DF.Data | None
		max_retries: DF.Int
		multiple_target_documents: DF.JSON | None
		next_in_key: DF.Check
		operation: DF.Literal["", "Insert", "Update", "Delete"]
		parent_sync_job: DF.Link | None
		queue: DF.Data | None
		queue_on_insert: DF.Check
		retry_after: DF.Datetime | None
		retry_count: DF.Int
		retry_delay: DF.Int
		source_document_name: DF.DynamicLink | None
		source_document_type: DF.Link | None
		started_at: DF.Datetime | None
		status: DF.Literal[
			"Pending",
			"Waiting",
			"Queued",
			"Started",
			"Finished",
			"Failed",
			"Skipped",
			"Relayed",
			"No Target",
			"Canceled",
		]
		sync_job_type: DF.Link
		target_document_name: DF.DynamicLink | None
		target_document_type: DF.Link | None
		time_taken: DF.Duration | None
		timeout: DF.Int
		title: DF.Data | None
		trigger_document_timestamp: DF.Datetime | None
		trigger_type: DF.Literal["Manual", "Scheduler", "Webhook", "API", "Document Hook"]
		triggered_by_document_name: DF.DynamicLink | None
		triggered_by_document_type: DF.Link | None
		update_enabled: DF.Check
		update_without_changes_enabled: DF.Check
		updated_data: DF.Code | None
		verbose_logging: DF.Check
	# end: auto-generated types

	def onload(self):
		from sync_tweaks.utils.diff_html import render_diff

		self.set_onload("allowed_actions", st.allowed_actions(self.status) if self.status else [])
		self.set_onload("diff_html", render_diff(self.diff_summary))

	def before_insert(self):
		job_type = get_job_type(self.sync_job_type)
		for fieldname in TYPE_DEFAULTS:
			if self.get(fieldname) is None or self.get(fieldname) == "":
				self.set(fieldname, job_type.get(fieldname))
		self.verbose_logging = self.verbose_logging or job_type.verbose_logging
		self.source_document_type = self.source_document_type or job_type.source_document_type
		self.target_document_type = self.target_document_type or job_type.target_document_type
		if not self.trigger_document_timestamp and self.triggered_by_document_name:
			self.trigger_document_timestamp = frappe.db.get_value(
				self.triggered_by_document_type, self.triggered_by_document_name, "modified"
			)
		self.concurrency_key = concurrency_key(job_type, self.source_document_type, self.source_document_name)
		self.status = st.S.WAITING if self.queue_on_insert else st.S.PENDING
		if self.status == st.S.WAITING:
			from sync_tweaks import dispatch

			self.next_in_key = int(dispatch.next_in_key(self.concurrency_key))

	def validate(self):
		try:
			self.operation = parse_operation(self.operation)
			self.context = serialise_context(self.context)
		except RequestError as e:
			frappe.throw(_(e.template).format(*e.args_), SyncJobError)
		if self.target_document_name and not self.operation:
			frappe.throw(_("A target document name needs an operation"), SyncJobError)
		if not self.source_document_name and not self.context:
			frappe.throw(_("A context is required when no source document is given"), SyncJobError)
		self.title = make_title(self)

	def after_insert(self):
		if self.status == st.S.WAITING:
			_dispatch_after_commit(self)

	def on_trash(self):
		if self.status == st.S.WAITING and self.next_in_key:
			_dispatch_after_commit(self, force_key=True)  # the next job of its key moves up

	# controller API

	def get_context(self) -> dict:
		return frappe.parse_json(self.context) if self.context else {}

	def get_source_document(self):
		"""The source document, or its last Deleted Document copy (with `flags.deleted` set)."""
		return get_document_even_if_deleted(self.source_document_type, self.source_document_name)

	def get_trigger_document(self):
		return get_document_even_if_deleted(self.triggered_by_document_type, self.triggered_by_document_name)

	def get_target_document(self, for_update: bool = False):
		if not (self.target_document_type and self.target_document_name):
			return None
		return frappe.get_doc(self.target_document_type, self.target_document_name, for_update=for_update)

	# status changes

	def transition(self, to: str, **fields):
		"""Move to status `to` (checked against the status table) and write `fields` with it."""
		if not st.can_transition(self.status, to):
			frappe.throw(
				_("Cannot move Sync Job {0} from {1} to {2}").format(self.name, _(self.status), _(str(to))),
				SyncJobTransitionError,
			)
		fields["status"] = str(to)
		if to == st.S.WAITING:
			from sync_tweaks import dispatch

			fields["next_in_key"] = int(dispatch.next_in_key(self.concurrency_key, self.name))
		was_next = self.status == st.S.WAITING and self.next_in_key
		self.db_set(fields, notify=True)
		publish_status(self)
		if to == st.S.WAITING or was_next:
			# let the dispatcher see it, or (leaving the line) let the next job of its key move up
			_dispatch_after_commit(self, force_key=bool(was_next))

	# user actions (whitelisted wrappers check write permission: frm.call only checks read)

	@frappe.whitelist(methods=["POST"])
	def start(self):
		self.check_permission("write")
		self.queue_now()

	@frappe.whitelist(methods=["POST"])
	def cancel_sync(self, reason: str | None = None):
		self.check_permission("write")
		self.cancel_now(reason)

	@frappe.whitelist(methods=["POST"])
	def retry(self):
		self.check_permission("write")
		self.retry_now()

	@frappe.whitelist(methods=["POST"])
	def dry_run_again(self) -> str:
		self.check_permission("write")
		frappe.has_permission("Sync Job", "create", throw=True)
		return self.clone_as_dry_run().name

	def queue_now(self):
		"""Pending -> Waiting; the dispatcher queues it when its slot is free."""
		self.transition(st.S.WAITING, queue_on_insert=1)

	def cancel_now(self, reason: str | None = None):
		self.reload_for_update()
		holds_slot = self.status == st.S.QUEUED
		self.transition(st.S.CANCELED, cancel_reason=(reason or "")[:1000] or None, retry_after=None)
		if holds_slot:
			from sync_tweaks import dispatch

			dispatch.release_after_commit(self)

	def retry_now(self):
		self.reload_for_update()
		self.transition(st.S.WAITING, retry_after=None, error_message=None)

	def clone_as_dry_run(self):
		from sync_tweaks.utils.sync_job import enqueue_sync_job

		return enqueue_sync_job(
			sync_job_type=self.sync_job_type,
			source_document_type=self.source_document_type,
			source_document_name=self.source_document_name,
			operation=self.operation if self.target_document_name or self.operation == "Insert" else None,
			target_document_type=self.target_document_type if self.target_document_name else None,
			target_document_name=self.target_document_name,
			context=self.context,
			dry_run=True,
			trigger_type="Manual",
			insert_enabled=self.insert_enabled,
			update_enabled=self.update_enabled,
			delete_enabled=self.delete_enabled,
			update_without_changes_enabled=self.update_without_changes_enabled,
		)

	def reload_for_update(self):
		"""Re-read the status under a row lock, so two users cannot act on a stale form."""
		self.status = frappe.db.get_value("Sync Job", self.name, "status", for_update=True)

	@staticmethod
	def clear_old_logs(days: int = 30):
		"""Log Settings cleanup: delete jobs older than `days` that are done and have no open children."""
		cutoff = add_days(now_datetime(), -days)
		closed = [s.value for s in st.SyncJobStatus if s not in st.OPEN]
		while True:
			names = frappe.get_all(
				"Sync Job",
				filters={"status": ["in", closed], "modified": ["<", cutoff]},
				pluck="name",
				limit=1000,
			)
			names = [name for name in names if not has_open_children(name)]
			if not names:
				break
			frappe.db.delete("Sync Job", {"name": ["in", names]})


def get_job_type(name: str):
	"""The Sync Job Type `name`, refusing unknown and disabled types."""
	try:
		job_type = frappe.get_cached_doc("Sync Job Type", name) if name else None
	except frappe.DoesNotExistError:
		frappe.clear_last_message()
		job_type = None
	if not job_type:
		frappe.throw(_("Sync Job Type {0} does not exist").format(frappe.bold(name)), SyncJobError)
	if job_type.disabled:
		frappe.throw(_("Sync Job Type {0} is disabled").format(frappe.bold(name)), SyncJobError)
	return job_type


def concurrency_key(
	job_type, source_document_type: str | None, source_document_name: str | None
) -> str | None:
	"""The key whose slot a job needs: None runs without a slot."""
	mode = job_type.concurrency or "Per Source"
	if mode == "Global":
		return "global"
	if mode == "Per Type":
		return f"type:{job_type.name}"
	if mode == "Per Source":
		return f"source:{job_type.name}:{source_document_type}:{source_document_name or ''}"[:140]
	return None


def make_title(job) -> str:
	if job.target_document_type and job.target_document_name:
		title = f"{job.source_document_type} > {job.target_document_type}: {job.target_document_name}"
	elif job.source_document_name:
		title = f"{job.source_document_type}: {job.source_document_name}"
	else:
		title = f"{job.source_document_type}"
	return title[:TITLE_LENGTH]


def publish_status(job):
	"""Tell open forms and lists that the job moved; sent only when the change commits."""
	frappe.publish_realtime(
		REALTIME_EVENT,
		{"name": job.name, "status": job.status, "sync_job_type": job.sync_job_type},
		doctype="Sync Job",
		docname=job.name,
		after_commit=True,
	)


def get_document_even_if_deleted(doctype: str | None, name: str | None):
	"""A document by name; if it was deleted, the latest Deleted Document copy (flags.deleted = True)."""
	if not (doctype and name):
		return None
	try:
		return frappe.get_doc(doctype, name)
	except frappe.DoesNotExistError:
		frappe.clear_last_message()
		if frappe.get_meta(doctype).is_virtual:
			raise
	data = frappe.get_all(
		"Deleted Document",
		filters={"deleted_doctype": doctype, "deleted_name": name},
		fields=["data"],
		order_by="creation desc",
		limit=1,
		pluck="data",
	)
	if not data:
		frappe.throw(
			_("{0} {1} does not exist and was not found in Deleted Documents").format(doctype, name),
			frappe.DoesNotExistError,
		)
	doc = frappe.get_doc(json.loads(data[0]))
	doc.flags.deleted = True
	return doc


def has_open_children(name: str) -> bool:
	return bool(
		frappe.db.exists("Sync Job", {"parent_sync_job": name, "status": ["in", [s.value for s in st.OPEN]]})
	)


def _dispatch_after_commit(job, force_key: bool = False):
	"""Dispatch after commit; a job waiting behind its key (or leaving the head of its line) also
	asks for its key, since the job that held the key may have ended before this commit."""
	from sync_tweaks import dispatch

	key_needed = force_key or not job.next_in_key
	dispatch.request_dispatch(keys=[job.concurrency_key] if key_needed else ())


@frappe.whitelist(methods=["POST"])
def clear_all_logs():
	"""Delete every Sync Job (System Manager only)."""
	if "System Manager" not in frappe.get_roles():
		frappe.throw(_("Only a System Manager can clear all Sync Job logs"), frappe.PermissionError)
	frappe.db.truncate("Sync Job")


@frappe.whitelist(methods=["POST"])
def bulk_action(action: str, names: str | list) -> dict:
	"""Retry or cancel the selected jobs; returns what happened to each."""
	methods = {"retry": "retry_now", "cancel": "cancel_now"}
	if action not in methods:
		frappe.throw(_("Unknown bulk action {0}").format(action), SyncJobError)
	names = frappe.parse_json(names) if isinstance(names, str) else names
	if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
		frappe.throw(_("names must be a list of Sync Job names"), SyncJobError)
	result = {"done": [], "failed": {}}
	for name in names[:1000]:
		try:
			job = frappe.get_doc("Sync Job", name)
			job.check_permission("write")
			getattr(job, methods[action])()
			result["done"].append(name)
		except (frappe.ValidationError, frappe.DoesNotExistError, frappe.PermissionError) as e:
			frappe.clear_last_message()
			result["failed"][name] = str(e)
	return result


def on_doctype_update():
	"""Indexes that keep dispatch and retries flat whatever the backlog."""
	# oldest Waiting job of a key; busy-key checks
	frappe.db.add_index(
		"Sync Job", ["concurrency_key", "status", "creation"], "concurrency_key_status_creation"
	)
	# oldest jobs next in line of a queue (the fill pass); Queued count per queue
	frappe.db.add_index(
		"Sync Job", ["status", "queue", "next_in_key", "creation"], "status_queue_next_in_key_creation"
	)
	# failures due for retry
	frappe.db.add_index("Sync Job", ["status", "retry_after"], "status_retry_after")
