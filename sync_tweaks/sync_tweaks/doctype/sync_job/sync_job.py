# Copyright (c) 2026, sync_tweaks contributors
# For license information, please see license.txt

import json

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils import add_days, now_datetime

from sync_tweaks.engine import conflicts
from sync_tweaks.engine import status as st
from sync_tweaks.engine.request import (
	TYPE_FILLED,
	RequestError,
	concurrency_key,
	fill_from_type,
	make_title,
	parse_operation,
	serialise_context,
)
from sync_tweaks.exceptions import SyncJobError, SyncJobTransitionError
from sync_tweaks.queue import after_commit, clock, fanout, lines, states
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import get_job_type
from sync_tweaks.utils.sync_job import dry_run_request, insert_job, validate_queue

BULK_LIMIT = 1000
# a child in Conflict waits for a person: retention counts it as open, like a queued or running one
OPEN_OR_CONFLICT = (*st.OPEN, st.S.CONFLICT)


class SyncJob(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		backfill_outcome: DF.Data | None
		cancel_reason: DF.SmallText | None
		children_done_at: DF.Datetime | None
		children_progress: DF.HTML
		coalesced_count: DF.Int
		concurrency_key: DF.Data | None
		conflict_count: DF.Int
		conflict_decisions: DF.JSON | None
		conflicts_html: DF.HTML
		context: DF.JSON | None
		current_data: DF.Code | None
		deadline_at: DF.Float
		deferral_count: DF.Int
		deferred_reason: DF.SmallText | None
		delete_enabled: DF.Check
		diff_html: DF.HTML
		diff_summary: DF.JSON | None
		dry_run: DF.Check
		due_at: DF.Float
		ended_at: DF.Datetime | None
		error_message: DF.Code | None
		error_signature: DF.Data | None
		error_title: DF.Data | None
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
			"Conflict",
		]
		sync_backfill: DF.Link | None
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
		self.set_onload("diff_html", render_diff(self.diff_summary, conflicts=False))  # sync_conflicts.js
		self.set_onload("conflicts", label_conflicts(self.target_document_type, self.get_conflicts()))
		self.set_onload("deferred", self.deferred_until())
		if self.status == st.S.RELAYED or self.multiple_target_documents:
			self.set_onload("children", fanout.progress(self.name))

	def deferred_until(self) -> dict | None:
		"""For a Waiting job a controller deferred: until when (site time) and why."""
		if self.status != st.S.WAITING or not self.due_at or self.due_at <= clock.now():
			return None
		return {"until": self.retry_after, "reason": self.deferred_reason}

	def before_insert(self):
		if not self.flags.from_request:
			self.sync_backfill = None  # only a backfill's creator (or a relay of its job) sets it
		job_type = get_job_type(self.sync_job_type)
		self.update(fill_from_type({key: self.get(key) for key in TYPE_FILLED}, job_type))
		if not self.trigger_document_timestamp and self.triggered_by_document_name:
			self.trigger_document_timestamp = frappe.db.get_value(
				self.triggered_by_document_type, self.triggered_by_document_name, "modified"
			)
		self.concurrency_key = concurrency_key(job_type, self.source_document_type, self.source_document_name)
		self.update(states.initial(self.queue_on_insert, lines.key_is_free(self.concurrency_key)))

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
		if not self.is_new():
			self.keep_stored_state()
		if not self.is_new() and self.status == st.S.PENDING:
			self.revalidate_pending()
		self.title = make_title(self)

	def keep_stored_state(self):
		"""A save never changes the job's state: only its actions do (see sync_tweaks.queue.states)."""
		before = self.get_doc_before_save()
		if not before:
			return
		if self.status != before.status:
			frappe.throw(
				_("The status of a Sync Job changes only through its actions (Start, Cancel, Retry)"),
				SyncJobTransitionError,
			)
		for fieldname in states.STATE_FIELDS:
			self.set(fieldname, before.get(fieldname))

	def revalidate_pending(self):
		"""An edited Pending job gets its queue and timeout checked and its concurrency key recomputed."""
		validate_queue(self.queue)
		if (self.timeout or 0) < 1:
			frappe.throw(_("Timeout must be at least 1 second"), SyncJobError)
		job_type = get_job_type(self.sync_job_type)
		self.concurrency_key = concurrency_key(job_type, self.source_document_type, self.source_document_name)

	def after_insert(self):
		states.announce_new(self)

	def on_trash(self):
		if self.status in (st.S.QUEUED, st.S.STARTED, st.S.WAITING):
			# frees a slot held under its name and serves its key (the next job moves up)
			after_commit.request(release=[(self.concurrency_key, self.name)])
		elif self.status == st.S.FAILED and self.due_at:
			after_commit.request(keys=[self.concurrency_key])  # it held its line: the next job moves up
		if self.parent_sync_job:
			after_commit.request(parents=[self.parent_sync_job])  # it may have been the last one open
		if self.sync_backfill:
			after_commit.request(backfills=[self.sync_backfill])

	# controller API

	def get_context(self) -> dict:
		return frappe.parse_json(self.context) if self.context else {}

	def get_source_document(self):
		"""The source document, or its last Deleted Document copy (with `flags.deleted` set)."""
		return get_document_even_if_deleted(self.source_document_type, self.source_document_name)

	def get_trigger_document(self):
		return get_document_even_if_deleted(self.triggered_by_document_type, self.triggered_by_document_name)

	def get_conflicts(self) -> list[dict]:
		"""The conflicts this job found (last synced / target now / source wants, and the choice)."""
		diff = frappe.parse_json(self.diff_summary) if self.diff_summary else None
		if not isinstance(diff, dict):
			return []
		return diff.get("conflicts") or []

	def get_target_document(self, for_update: bool = False):
		if not (self.target_document_type and self.target_document_name):
			return None
		return frappe.get_doc(self.target_document_type, self.target_document_name, for_update=for_update)

	# user actions: act on the stored job, never on the copy a client sent (frm.call checks only read)

	@frappe.whitelist(methods=["POST"])
	def start(self):
		act(self.name, "start", check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def cancel_sync(self, reason: str | None = None):
		act(self.name, "cancel_sync", reason, check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def retry(self):
		act(self.name, "retry", check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def resolve(self, decisions: str | dict | None = None):
		"""Run a Conflict job again with a choice per field: {path: "source" | "target"}."""
		act(self.name, "resolve", decisions=decisions, check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def dry_run_again(self) -> str:
		return act(self.name, "dry_run_again", check_permission=True).name

	@staticmethod
	def clear_old_logs(days: int = 30):
		"""Log Settings cleanup: delete jobs older than `days` that are done and have no open children."""
		cutoff = add_days(now_datetime(), -days)
		# a Conflict job waits for a person: it is kept until someone resolves or cancels it
		closed = tuple(s.value for s in st.SyncJobStatus if s not in st.OPEN and s != st.S.CONFLICT)
		while names := frappe.db.sql_list(
			"""select job.name from `tabSync Job` job where job.status in %(closed)s and job.modified < %(cutoff)s
			and not exists (select 1 from `tabSync Job` child where child.parent_sync_job=job.name
			and child.status in %(open)s) limit 1000""",
			{"closed": closed, "cutoff": cutoff, "open": tuple(s.value for s in OPEN_OR_CONFLICT)},
		):
			frappe.db.delete("Sync Job", {"name": ["in", names]})


def act(
	name: str,
	action: str,
	reason: str | None = None,
	check_permission: bool = False,
	decisions: str | dict | None = None,
):
	"""Do a user action (start, cancel_sync, retry, resolve, dry_run_again) on the stored job, read
	under lock. `resolve` takes `decisions` ({path: "source" | "target"}, or one of those for every
	conflict). The Desk buttons, bulk actions and the CLI all come here. Returns the job (or its
	dry-run copy)."""
	job = frappe.get_doc("Sync Job", name, for_update=True)
	if check_permission:
		job.check_permission("write")
		if action == "dry_run_again":
			frappe.has_permission("Sync Job", "create", throw=True)
	if st.S(job.status) not in st.ACTIONS[action]:
		allowed = ", ".join(_(s.value) for s in st.SyncJobStatus if s in st.ACTIONS[action])
		frappe.throw(
			_("Cannot {0} Sync Job {1}: it is {2} (only {3})").format(
				_(ACTION_VERBS[action]), job.name, _(job.status), allowed
			),
			SyncJobTransitionError,
		)
	if action == "start":
		states.mark_waiting(job, queue_on_insert=1)
	elif action == "cancel_sync":
		states.cancel(job, reason)
	elif action == "retry":
		states.mark_waiting(job, error_message=None)
	elif action == "resolve":
		states.resolve(job, json.dumps(checked_decisions(job, decisions), default=str))
	else:
		return insert_job(dry_run_request(job))
	return job


ACTION_VERBS = {
	"start": "start",
	"cancel_sync": "cancel",
	"retry": "retry",
	"resolve": "resolve",
	"dry_run_again": "dry-run",
}


def checked_decisions(job, decisions) -> dict:
	"""The decisions to store: one choice per open conflict, each against the target value shown."""
	if isinstance(decisions, str):
		if decisions in conflicts.CHOICES:
			decisions = {c["path"]: decisions for c in job.get_conflicts() if not c.get("choice")}
		else:
			try:
				decisions = json.loads(decisions)
			except ValueError:
				frappe.throw(_("Decisions must be JSON"), SyncJobError)
	try:
		return conflicts.decide(job.get_conflicts(), decisions)
	except conflicts.DecisionError as e:
		frappe.throw(_(e.template).format(*e.args_), SyncJobError)


def label_conflicts(doctype: str | None, conflicts: list[dict]) -> list[dict]:
	"""Give each conflict the label of its field (child-row fields: table label, row number, field)."""
	if not conflicts or not doctype:
		return conflicts
	meta = frappe.get_meta(doctype)
	for conflict in conflicts:
		if not conflict.get("table"):
			conflict["label"] = _(meta.get_label(conflict["field"]))
			continue
		table = meta.get_field(conflict["table"])
		child = frappe.get_meta(table.options) if table else None
		idx = frappe.db.get_value(table.options, conflict["row"], "idx") if table else None
		table_label = _(table.label) if table else conflict["table"]
		field_label = _(child.get_label(conflict["field"])) if child else conflict["field"]
		conflict["label"] = f"{table_label} #{idx or conflict['row']} · {field_label}"
	return conflicts


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
	"""Whether a child of the job is still open or waits for a person in Conflict."""
	return bool(
		frappe.db.exists(
			"Sync Job", {"parent_sync_job": name, "status": ["in", [s.value for s in OPEN_OR_CONFLICT]]}
		)
	)


@frappe.whitelist()
def get_children_progress(name: str) -> dict:
	"""Progress of a relayed parent's children (read permission on the parent)."""
	frappe.get_doc("Sync Job", name).check_permission("read")
	return fanout.progress(name)


@frappe.whitelist(methods=["POST"])
def clear_all_logs():
	"""Delete every Sync Job (System Manager only)."""
	if "System Manager" not in frappe.get_roles():
		frappe.throw(_("Only a System Manager can clear all Sync Job logs"), frappe.PermissionError)
	frappe.db.truncate("Sync Job")


@frappe.whitelist(methods=["POST"])
def bulk_action(action: str, names: str | list) -> dict:
	"""Retry, cancel or resolve (take source / keep target on every conflict) the selected jobs;
	returns what happened to each."""
	methods = {"retry": "retry", "cancel": "cancel_sync", "take_source": "resolve", "keep_target": "resolve"}
	choices = {"take_source": conflicts.SOURCE, "keep_target": conflicts.TARGET}
	if action not in methods:
		frappe.throw(_("Unknown bulk action {0}").format(action), SyncJobError)
	names = frappe.parse_json(names) if isinstance(names, str) else names
	if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
		frappe.throw(_("names must be a list of Sync Job names"), SyncJobError)
	result = {"done": [], "failed": {}}
	for name in names[:BULK_LIMIT]:
		try:
			act(name, methods[action], check_permission=True, decisions=choices.get(action))
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
	# a drain's turn of each type: its oldest jobs next in line of a queue
	frappe.db.add_index(
		"Sync Job",
		["status", "queue", "next_in_key", "sync_job_type", "creation"],
		"status_queue_next_in_key_type_creation",
	)
	# failures due for retry
	frappe.db.add_index("Sync Job", ["status", "retry_after"], "status_retry_after")
	# failures grouped by cause (one indexed GROUP BY)
	frappe.db.add_index("Sync Job", ["status", "error_signature"], "status_error_signature")
	# a backfill's roll-up: its jobs not counted yet, per status; an apply's documents in name order
	frappe.db.add_index(
		"Sync Job", ["sync_backfill", "backfill_outcome", "status"], "sync_backfill_outcome_status"
	)
	frappe.db.add_index("Sync Job", ["sync_backfill", "source_document_name"], "sync_backfill_source")
