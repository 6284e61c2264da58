# Copyright (c) 2026, sync_tweaks contributors
# For license information, please see license.txt

"""Sync Backfill: a type run over many existing source documents, with a roll-up (sync_tweaks.backfill)."""

import json

import frappe
from frappe import _
from frappe.model.document import Document

from sync_tweaks.backfill import creation
from sync_tweaks.backfill import rollup as rollups
from sync_tweaks.backfill.states import ACTIONS, B, check_action
from sync_tweaks.engine.rollup import OUTCOMES
from sync_tweaks.exceptions import SyncJobError
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import get_job_type

# fields only sync_tweaks.backfill writes
MACHINE_FIELDS = (
	"total_documents",
	"documents_selected",
	"jobs_created",
	"jobs_open",
	"started_at",
	"creation_ended_at",
	"ended_at",
	"last_source",
	"heartbeat_at",
	"creator_token",
	"creator_job",
	"transient_errors",
	"applied_as",
	"folded_at",
	"error_message",
	"cancel_reason",
	"outcome_counts",
	"field_changes",
	"sample_diffs",
	"failure_groups",
	*(frappe.scrub(outcome) + "_count" for outcome in OUTCOMES),
)


class SyncBackfill(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		applied_as: DF.Link | None
		applied_from: DF.Link | None
		cancel_reason: DF.SmallText | None
		canceled_count: DF.Int
		conflict_count: DF.Int
		creation_ended_at: DF.Datetime | None
		creator_job: DF.Data | None
		creator_token: DF.Data | None
		delete_count: DF.Int
		document_limit: DF.Int
		documents_selected: DF.Int
		dry_run: DF.Check
		ended_at: DF.Datetime | None
		error_message: DF.Code | None
		failed_count: DF.Int
		failure_groups: DF.JSON | None
		field_changes: DF.JSON | None
		folded_at: DF.Float
		heartbeat_at: DF.Float
		insert_count: DF.Int
		jobs_created: DF.Int
		jobs_open: DF.Int
		last_source: DF.Data | None
		no_target_count: DF.Int
		only_changes: DF.Check
		outcome_counts: DF.JSON | None
		relayed_count: DF.Int
		rollup_html: DF.HTML | None
		sample_diffs: DF.JSON | None
		skipped_count: DF.Int
		source_document_type: DF.Link | None
		source_filters: DF.Code | None
		started_at: DF.Datetime | None
		status: DF.Literal["Draft", "Creating", "Running", "Completed", "Canceled", "Failed"]
		sync_job_type: DF.Link
		title: DF.Data | None
		total_documents: DF.Int
		transient_errors: DF.Int
		unchanged_count: DF.Int
		update_count: DF.Int
	# end: auto-generated types

	def onload(self):
		from sync_tweaks.utils.rollup_html import chart_data, render_rollup

		allowed = [action for action, statuses in ACTIONS.items() if B(self.status) in statuses]
		if not self.dry_run:
			allowed = [action for action in allowed if action != "apply"]
		self.set_onload("allowed_actions", allowed)
		# the form polls while jobs are being created or run (realtime may have been missed)
		self.set_onload("following", self.status in (B.CREATING.value, B.RUNNING.value))
		self.set_onload("rollup_html", render_rollup(self))
		self.set_onload("rollup_chart", chart_data(self))

	def before_insert(self):
		self.status = B.DRAFT.value
		# progress, cursor and roll-up belong to the machinery; an apply is made only by `act`
		for field in MACHINE_FIELDS:
			self.set(field, None)
		if not self.flags.applying:
			self.applied_from, self.only_changes = None, 0

	def on_trash(self):
		if self.status in (B.CREATING.value, B.RUNNING.value):
			frappe.throw(_("Cancel Sync Backfill {0} before deleting it").format(self.name), SyncJobError)
		if creation.open_jobs(self.name):
			frappe.throw(
				_("Sync Backfill {0} still has jobs that have not ended: delete it once they have").format(
					self.name
				),
				SyncJobError,
			)

	def validate(self):
		if not self.is_new():
			self.keep_stored_state()
		job_type = get_job_type(self.sync_job_type)
		self.source_document_type = job_type.source_document_type
		kind = _("dry run") if self.dry_run else _("apply") if self.applied_from else _("real run")
		self.title = f"{self.sync_job_type} ({kind})"[:140]
		if self.document_limit and self.document_limit < 0:
			frappe.throw(_("Limit must be 0 (all documents) or more"), SyncJobError)
		filters = creation.parse_filters(self.source_filters)
		if self.is_new():
			# an unknown field or operator fails here, not in the creator
			check_filter_fields(self.source_document_type, filters)
			frappe.get_list(self.source_document_type, filters=filters, limit_page_length=1, pluck="name")
			self.source_filters = json.dumps(filters) if filters else None
		if self.applied_from:
			dry_run = frappe.db.get_value(
				"Sync Backfill", self.applied_from, ["sync_job_type", "dry_run"], as_dict=True
			)
			if not dry_run or not dry_run.dry_run or dry_run.sync_job_type != self.sync_job_type:
				frappe.throw(_("Apply only a dry-run backfill of the same Sync Job Type"), SyncJobError)
			if self.dry_run:
				frappe.throw(_("An applied backfill creates real jobs: it cannot be a dry run"), SyncJobError)

	def keep_stored_state(self):
		"""A save (the form's, the REST API's) never changes what the machinery writes."""
		stored = self.get_doc_before_save()
		if stored:
			for field in (*MACHINE_FIELDS, "status", "applied_from", "only_changes"):
				self.set(field, stored.get(field))

	@frappe.whitelist(methods=["POST"])
	def start_backfill(self):
		act(self.name, "start", check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def cancel_backfill(self, reason: str | None = None):
		act(self.name, "cancel", reason=reason, check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def resume_backfill(self):
		act(self.name, "resume", check_permission=True)

	@frappe.whitelist(methods=["POST"])
	def apply_backfill(self, only_changes: bool | int | str = 0) -> str:
		return act(self.name, "apply", only_changes=only_changes, check_permission=True).name

	@frappe.whitelist(methods=["POST"])
	def refresh_rollup(self):
		frappe.get_doc("Sync Backfill", self.name).check_permission("write")  # the stored one
		rollups.fold(self.name)


def check_filter_fields(doctype: str, filters: list):
	"""Every filter names a field of `doctype` (or, as [child doctype, field, …], of a child table)."""
	from frappe.model import default_fields

	tables = {df.options for df in frappe.get_meta(doctype).get_table_fields()} | {doctype}
	for condition in filters:
		if len(condition) not in (3, 4):
			frappe.throw(
				_("Each filter is [field, operator, value]: {0}").format(json.dumps(condition)), SyncJobError
			)
		filtered_doctype, field = (
			(condition[0], condition[1]) if len(condition) == 4 else (doctype, condition[0])
		)
		if filtered_doctype not in tables:
			frappe.throw(
				_("Filter on {0} or its child tables, not {1}").format(doctype, filtered_doctype),
				SyncJobError,
			)
		meta = frappe.get_meta(filtered_doctype)
		if field not in default_fields and not meta.get_field(field):
			frappe.throw(_("{0} has no field {1}").format(filtered_doctype, field), SyncJobError)


def act(name: str, action: str, reason: str | None = None, only_changes=0, check_permission: bool = False):
	"""Start, cancel, resume or apply the stored backfill, read under lock (Desk, CLI and API).
	Returns the backfill, or for `apply` the new real backfill (started)."""
	backfill = frappe.get_doc("Sync Backfill", name, for_update=True)
	if check_permission:
		backfill.check_permission("write")
	check_action(backfill, action)
	if action == "start":
		creation.start(backfill)
	elif action == "cancel":
		creation.cancel(backfill, reason)
	elif action == "resume":
		creation.resume(backfill)
	else:
		if check_permission:
			frappe.has_permission("Sync Backfill", "create", throw=True)
		applied = new_apply(backfill, only_changes)
		creation.start(applied)
		return applied
	return backfill


def new_apply(dry_run, only_changes=0):
	"""A Draft backfill of real jobs for the documents of Completed dry run `dry_run` (optionally only
	those that would change); refused when the dry run's jobs were deleted meanwhile."""
	check_action(dry_run, "apply")
	if not dry_run.dry_run:
		frappe.throw(_("Only a dry-run backfill can be applied"), SyncJobError)
	earlier = dry_run.applied_as and frappe.db.get_value("Sync Backfill", dry_run.applied_as, "status")
	if earlier and earlier != B.CANCELED.value:
		frappe.throw(
			_("Sync Backfill {0} was applied already as {1} ({2}): cancel that one to apply again").format(
				dry_run.name, dry_run.applied_as, _(earlier)
			),
			SyncJobError,
		)
	kept = frappe.db.count("Sync Job", {"sync_backfill": dry_run.name, "parent_sync_job": ["is", "not set"]})
	if kept < (dry_run.jobs_created or 0):
		frappe.throw(
			_(
				"{0} of the dry run's {1} jobs were deleted (Log Settings keeps Sync Jobs for a while):"
				" run the dry run again, then apply it"
			).format((dry_run.jobs_created or 0) - kept, dry_run.jobs_created),
			SyncJobError,
		)
	applied = new_backfill(
		dry_run.sync_job_type,
		filters=dry_run.source_filters,
		dry_run=False,
		applied_from=dry_run.name,
		only_changes=frappe.utils.cint(only_changes),
	)
	dry_run.db_set("applied_as", applied.name, update_modified=False)  # the caller holds its row lock
	return applied


def new_backfill(sync_job_type: str, filters=None, dry_run=True, limit=0, **fields):
	"""Insert a Draft backfill (permission-checked as the session user); `applied_from` and
	`only_changes` make it the apply of a dry run."""
	backfill = frappe.get_doc(
		{
			"doctype": "Sync Backfill",
			"sync_job_type": sync_job_type,
			"source_filters": filters if isinstance(filters, str) or filters is None else json.dumps(filters),
			"dry_run": int(bool(frappe.utils.cint(dry_run))),
			"document_limit": frappe.utils.cint(limit),
			**fields,
		}
	)
	backfill.flags.applying = bool(fields.get("applied_from"))
	backfill.insert()
	return backfill


@frappe.whitelist(methods=["POST"])
def create_backfill(
	sync_job_type: str, source_filters: str | None = None, dry_run: bool | int | str = 1, limit: int = 0
) -> str:
	"""Create and start a backfill (the Sync Job Type form's Backfill button); returns its name."""
	frappe.has_permission("Sync Backfill", "create", throw=True)
	if not isinstance(sync_job_type, str) or not frappe.db.exists("Sync Job Type", sync_job_type):
		frappe.throw(_("Sync Job Type {0} does not exist").format(sync_job_type), SyncJobError)
	backfill = new_backfill(sync_job_type, filters=source_filters or None, dry_run=dry_run, limit=limit)
	creation.start(backfill)
	return backfill.name
