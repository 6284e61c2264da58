# Copyright (c) 2026, sync_tweaks contributors
# For license information, please see license.txt

import os

import frappe
from frappe import _
from frappe.model.document import Document

from sync_tweaks import controller
from sync_tweaks.exceptions import SyncJobError

BOILERPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "boilerplate", "controller._py")
# fields anyone with write permission may change on a standard type (operators disable shipped types)
OPERATOR_FIELDS = frozenset({"disabled"})
# changed only by pause/resume (and the circuit breaker), never by a save
PAUSE_FIELDS = ("paused", "paused_reason")


class SyncJobType(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		coalesce_duplicates: DF.Check
		concurrency: DF.Literal["Per Source", "Per Type", "Global", "None"]
		controller: DF.Data | None
		disabled: DF.Check
		is_standard: DF.Literal["No", "Yes"]
		expire_after: DF.Int
		max_deferrals: DF.Int
		max_retries: DF.Int
		module: DF.Link
		on_conflict: DF.Literal["Overwrite", "Keep Target Edits", "Stop for Review"]
		pause_after_failures: DF.Int
		paused: DF.Check
		paused_reason: DF.SmallText | None
		queue: DF.Data
		rate_limit: DF.Int
		rate_period: DF.Int
		retry_backoff: DF.Literal["Fixed", "Exponential"]
		retry_delay: DF.Int
		run_as: DF.Link | None
		source_document_type: DF.Link
		sync_job_type_name: DF.Data
		target_document_type: DF.Link | None
		timeout: DF.Int
		verbose_logging: DF.Check
	# end: auto-generated types

	def onload(self):
		from sync_tweaks.queue import breaker

		self.set_onload("controller_path", controller.module_path(self) if self.module else None)
		self.set_onload("consecutive_failures", breaker.consecutive_failures(self.name) if self.name else 0)
		self.set_onload("controller_exists", bool(self.module) and controller.controller_exists(self))

	def before_validate(self):
		if not self.module and self.source_document_type:
			self.module = frappe.db.get_value("DocType", self.source_document_type, "module")
		if not self.is_standard:
			self.is_standard = "Yes" if can_edit_standard() else "No"

	def validate(self):
		self.keep_pause_state()
		self.validate_standard()
		self.validate_settings()
		self.validate_controller_field()
		self.warn_incomplete_controller()

	def on_update(self):
		if self.is_standard == "Yes" and not frappe.flags.in_import:
			self.export_with_controller()

	def on_trash(self):
		if self.is_standard == "Yes" and not can_edit_standard() and not frappe.flags.in_migrate:
			frappe.throw(
				_("Only Administrator can delete a standard Sync Job Type in developer mode"),
				frappe.PermissionError,
			)
		self.refuse_with_open_jobs()
		frappe.db.delete("Sync Link", {"sync_job_type": self.name})  # lineage of a type that is gone

	def keep_pause_state(self):
		"""A save (even of a form opened before a pause) never pauses or resumes the type."""
		before = self.get_doc_before_save()
		for fieldname in PAUSE_FIELDS:
			self.set(fieldname, before.get(fieldname) if before else (0 if fieldname == "paused" else None))

	@frappe.whitelist(methods=["POST"])
	def pause(self, reason: str | None = None):
		"""Pause the type at once on every worker: waiting and new jobs stay Waiting."""
		frappe.get_doc("Sync Job Type", self.name).check_permission("write")
		pause_type(self.name, reason or _("paused by {0}").format(frappe.session.user))

	@frappe.whitelist(methods=["POST"])
	def resume(self):
		"""Resume the type: what waits is dispatched after commit."""
		frappe.get_doc("Sync Job Type", self.name).check_permission("write")
		resume_type(self.name)

	def refuse_with_open_jobs(self):
		"""Jobs still to run (or waiting for a retry) need their type: cancel them first."""
		open_jobs = frappe.db.sql(
			"""select count(*) from `tabSync Job` where sync_job_type=%(type)s
			and (status in ('Pending', 'Waiting', 'Queued', 'Started') or (status='Failed' and due_at > 0))""",
			{"type": self.name},
		)[0][0]
		if open_jobs:
			frappe.throw(
				_("Sync Job Type {0} still has {1} open Sync Job(s): cancel them before deleting it").format(
					frappe.bold(self.name), open_jobs
				),
				frappe.LinkExistsError,
			)

	def validate_standard(self):
		if frappe.flags.in_import or frappe.flags.in_install or frappe.flags.in_migrate:
			return
		before = self.get_doc_before_save()
		was_standard = bool(before and before.is_standard == "Yes")
		if (self.is_standard == "Yes" or was_standard) and not can_edit_standard():
			if self.is_standard == "Yes" and not was_standard:
				frappe.throw(
					_("Only Administrator can make a standard Sync Job Type, in developer mode"),
					frappe.PermissionError,
				)
			if self.changed_fields(before) - OPERATOR_FIELDS:
				frappe.throw(
					_(
						"Standard Sync Job Type {0} can only be edited by Administrator in developer mode"
					).format(frappe.bold(self.name)),
					frappe.PermissionError,
				)
		if self.is_standard != "Yes":
			self.refuse_to_shadow_standard()

	def refuse_to_shadow_standard(self):
		"""A non-standard type must not take the controller folder of a standard one."""
		scrubbed = frappe.scrub(self.sync_job_type_name or self.name or "")
		for other in frappe.get_all(
			"Sync Job Type",
			filters={"is_standard": "Yes", "name": ["!=", self.name or ""]},
			fields=["name", "module"],
		):
			if frappe.scrub(other.name) == scrubbed and other.module == self.module:
				frappe.throw(
					_(
						"A standard Sync Job Type {0} already uses this name; a non-standard type cannot overwrite it"
					).format(frappe.bold(other.name)),
					frappe.DuplicateEntryError,
				)

	def validate_settings(self):
		from frappe.utils.background_jobs import get_queues_timeout

		if self.queue not in get_queues_timeout():
			frappe.throw(
				_("Queue {0} does not exist; use one of {1}").format(
					frappe.bold(self.queue), ", ".join(get_queues_timeout())
				),
				SyncJobError,
			)
		for fieldname in (
			"timeout",
			"retry_delay",
			"max_retries",
			"rate_limit",
			"rate_period",
			"expire_after",
			"max_deferrals",
			"pause_after_failures",
		):
			if (self.get(fieldname) or 0) < 0:
				frappe.throw(_("{0} cannot be negative").format(self.meta.get_label(fieldname)), SyncJobError)
		if not self.timeout:
			frappe.throw(_("Timeout must be at least 1 second"), SyncJobError)
		if self.rate_limit and not self.rate_period:
			frappe.throw(_("A rate limit needs a Rate Period of at least 1 second"), SyncJobError)

	def validate_controller_field(self):
		before = self.get_doc_before_save()
		for fieldname, message in (
			("controller", _("Only a System Manager can set the controller path")),
			("run_as", _("Only a System Manager can set the user jobs run as")),
		):
			changed = (before.get(fieldname) if before else None) != self.get(fieldname)
			if changed and self.get(fieldname) and "System Manager" not in frappe.get_roles():
				frappe.throw(message, frappe.PermissionError)
		if self.controller:
			controller.validate_explicit_path(self.controller)
		if self.run_as == "Guest":
			frappe.throw(_("Sync jobs cannot run as Guest"), SyncJobError)

	def warn_incomplete_controller(self):
		if controller.controller_exists(self):
			for problem in controller.problems(self):
				frappe.msgprint(problem, title=_("Incomplete controller"), indicator="orange")

	def changed_fields(self, before) -> set[str]:
		if not before:
			return set()
		return {df.fieldname for df in self.meta.fields if self.get(df.fieldname) != before.get(df.fieldname)}

	def export_with_controller(self):
		"""Export the type as JSON and generate its controller once, like standard Reports."""
		from frappe.modules.utils import export_module_json

		if self.controller:
			return
		stem = export_module_json(self, True, self.module)
		if not stem:
			return
		folder = os.path.dirname(stem)
		for init in (
			os.path.join(os.path.dirname(folder), "__init__.py"),
			os.path.join(folder, "__init__.py"),
		):
			if not os.path.exists(init):
				with open(init, "w"):
					pass
		if not os.path.exists(stem + ".py"):
			with open(stem + ".py", "w") as f:
				f.write(render_controller(self))


def get_job_type(name: str):
	"""The Sync Job Type `name` (cached), refusing unknown and disabled types."""
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


def pause_type(name: str, reason: str, notify: bool = False) -> bool:
	"""Pause type `name` in the caller's transaction (effective for every worker once it commits);
	False when it was paused already. `notify` tells System Managers (the circuit breaker)."""
	rows = frappe.db.sql("select paused from `tabSync Job Type` where name=%s for update", name)
	if not rows or rows[0][0]:
		return False
	frappe.db.set_value(
		"Sync Job Type", name, {"paused": 1, "paused_reason": (reason or "")[:1000]}, update_modified=True
	)
	frappe.clear_document_cache("Sync Job Type", name)
	publish_pause(name, True)
	if notify:
		notify_system_managers(name, reason)
	return True


def resume_type(name: str) -> bool:
	"""Resume type `name`; after commit, its waiting jobs are dispatched. False when not paused."""
	from sync_tweaks.queue import after_commit, breaker

	rows = frappe.db.sql("select paused from `tabSync Job Type` where name=%s for update", name)
	if not rows or not rows[0][0]:
		return False
	frappe.db.set_value("Sync Job Type", name, {"paused": 0, "paused_reason": None}, update_modified=True)
	frappe.clear_document_cache("Sync Job Type", name)
	breaker.reset(name)
	publish_pause(name, False)
	after_commit.request()
	return True


def publish_pause(name: str, paused: bool):
	frappe.publish_realtime(
		"sync_job_type_paused",
		{"name": name, "paused": int(paused)},
		doctype="Sync Job Type",
		docname=name,
		after_commit=True,
	)


def notify_system_managers(name: str, reason: str):
	"""A Notification Log (the bell in Desk) for every enabled System Manager."""
	users = frappe.db.sql_list(
		"""select distinct u.name from `tabUser` u join `tabHas Role` r on r.parent=u.name
		and r.parenttype='User' where r.role='System Manager' and u.enabled=1 and u.name != 'Guest'"""
	)
	subject = _("Sync Job Type {0} paused itself: {1}").format(name, reason)
	for user in users:
		frappe.get_doc(
			{
				"doctype": "Notification Log",
				"subject": subject,
				"for_user": user,
				"type": "Alert",
				"document_type": "Sync Job Type",
				"document_name": name,
				"email_content": subject,
			}
		).insert(ignore_permissions=True)


def can_edit_standard() -> bool:
	return frappe.session.user == "Administrator" and bool(frappe.conf.developer_mode)


def render_controller(job_type) -> str:
	with open(BOILERPLATE) as f:
		template = f.read()
	return template.format(
		sync_job_type=job_type.name,
		source_document_type=job_type.source_document_type,
		target_document_type=job_type.target_document_type or job_type.source_document_type,
	)


@frappe.whitelist()
def get_controller_status(sync_job_type: str) -> dict:
	"""Whether the type's controller exists and what is wrong with it (for the form and `doctor`)."""
	job_type = frappe.get_doc("Sync Job Type", sync_job_type)
	job_type.check_permission("read")
	exists = controller.controller_exists(job_type)
	return {
		"path": controller.module_path(job_type),
		"exists": exists,
		"problems": controller.problems(job_type) if exists else [],
	}


@frappe.whitelist()
def get_doctor_findings(sync_job_type: str) -> list[dict]:
	"""`bench sync-job doctor` for one type, for the banner on its form (problems and fixes, no job names)."""
	from sync_tweaks import doctor

	frappe.get_doc("Sync Job Type", sync_job_type).check_permission("read")
	return [{"check": f.check, "problem": f.problem, "fix": f.fix} for f in doctor.run(sync_job_type)]
