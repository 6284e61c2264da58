"""Applying a controller to one Sync Job: target discovery, update, diff, save, relay and hooks.

`run(job)` returns an `Outcome` and never commits; the worker decides what survives. In a dry run
every write (the controller's included) is rolled back to a savepoint. An Update first compares the
target with the pair's last synced state (`engine.conflicts`, kept in Sync Link) and applies the
type's `on_conflict` policy; the sync's own writes are marked so that they enqueue no echo (`echo`).
"""

import contextlib

import frappe
from frappe import _

from sync_tweaks import controller, echo
from sync_tweaks.engine import conflicts
from sync_tweaks.engine.diff import diff_snapshots, is_empty
from sync_tweaks.engine.outcome import Outcome
from sync_tweaks.engine.request import RequestError, parse_operation
from sync_tweaks.engine.shapes import Shape
from sync_tweaks.engine.status import FINISHED_HOOK, S
from sync_tweaks.exceptions import SyncControllerError
from sync_tweaks.queue.transactions import Savepoint, nested_callbacks
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import get_job_type
from sync_tweaks.sync_tweaks.doctype.sync_link import sync_link
from sync_tweaks.utils.snapshot import snapshot

REVIEW_SAVEPOINT = "sync_job_review"
TARGET_KEYS = frozenset({"operation", "target_document_type", "target_document_name", "context"})
ENABLED_FLAG = {"Insert": "insert_enabled", "Update": "update_enabled", "Delete": "delete_enabled"}


def run(job) -> Outcome:
	"""Run the job's controller in its mode; relays create the child jobs."""
	job_type = get_job_type(job.sync_job_type)
	module, shape = controller.load(job_type)
	sync_run = SyncRun(job, module, shape, job_type.get("on_conflict") or conflicts.OVERWRITE)
	with dry_run_scope(job, "sync_job_dry_run"):
		outcome = sync_run.run()
	if outcome.status == S.RELAYED:
		children = create_children(job, outcome.targets)
		job.multiple_target_documents = frappe.as_json(
			[
				{
					"sync_job": child.name,
					"operation": child.operation,
					"target_document_type": child.target_document_type,
					"target_document_name": child.target_document_name,
				}
				for child in children
			]
		)
		with dry_run_scope(job, "sync_job_dry_run_relay"):
			sync_run.hook("after_relay", children)
	if outcome.status in FINISHED_HOOK:
		with dry_run_scope(job, "sync_job_dry_run_finished"):
			sync_run.hook("finished", None if outcome.status == S.RELAYED else outcome.target_doc)
	return outcome


def dry_run_scope(job, savepoint: str):
	"""In a dry run, roll back whatever the block writes, as a transaction of its own."""
	return nested_callbacks(savepoint) if job.dry_run else contextlib.nullcontext()


def create_children(job, targets: list[dict]) -> list:
	"""One child job per target, inheriting the parent's flags, queue, limits and trigger."""
	from sync_tweaks.utils.sync_job import child_request, insert_job

	return [insert_job(child_request(job, target)) for target in targets]


class SyncRun:
	def __init__(self, job, module, shape: Shape, on_conflict: str = conflicts.OVERWRITE):
		self.job = job
		self.module = module
		self.shape = shape
		self.on_conflict = on_conflict
		self.source = job.get_source_document()

	def hook(self, name: str, *args):
		"""Call an optional controller hook with (sync_job, source_doc, *args)."""
		function = getattr(self.module, name, None)
		return function(self.job, self.source, *args) if function else None

	def run(self) -> Outcome:
		self.hook("after_start")
		if self.shape is Shape.BYPASS:
			return self.bypass()
		target = self.preset_target()
		if target is None:
			target = self.discover()
			if isinstance(target, Outcome):
				return target
		if target is None:
			return Outcome(S.NO_TARGET, _("The controller found no target"))
		return self.sync(target)

	def bypass(self) -> Outcome:
		with echo.writing(self.job, None):
			result = self.module.execute(self.job, self.source)
		if result is None:
			result = {}
		if not isinstance(result, dict) or set(result) - {"target_doc", "operation", "diff"}:
			raise_shape_error(
				_("execute() must return a dict with target_doc, operation and optionally diff")
			)
		target_doc = result.get("target_doc")
		outcome = Outcome(
			S.SKIPPED if self.job.dry_run else S.FINISHED,
			_("Dry run") if self.job.dry_run else "",
			operation=_operation(result.get("operation"), allow_empty=True),
			target_doc=target_doc,
			target_document_type=getattr(target_doc, "doctype", None),
			target_document_name=getattr(target_doc, "name", None),
			diff=result.get("diff"),
		)
		if not self.job.dry_run and outcome.target_document_name:
			# lineage only: a bypass writes what it likes, so it has no synced state to compare
			self.job.target_document_type = outcome.target_document_type
			self.job.target_document_name = outcome.target_document_name
			if outcome.operation == "Delete":
				sync_link.forget(self.job)
			elif outcome.operation:
				sync_link.record_write(self.job, None)
		return outcome

	def preset_target(self) -> dict | None:
		"""A job created with an Insert, or with a target name, skips discovery."""
		job = self.job
		if job.operation == "Insert" or job.target_document_name:
			return {
				"operation": job.operation,
				"target_document_type": job.target_document_type,
				"target_document_name": job.target_document_name,
			}
		return None

	def discover(self):
		"""Ask the controller for its target(s): a target dict, None, or a relay Outcome."""
		if self.shape is Shape.MULTIPLE:
			targets = self.module.get_multiple_target_documents(self.job, self.source)
			targets = self.valid_targets(targets)
			if len(targets) > 1:
				edited = self.hook("before_relay", targets)
				targets = self.valid_targets(edited) if edited is not None else self.valid_targets(targets)
			if len(targets) > 1:
				return Outcome(S.RELAYED, targets=targets)
			return targets[0] if targets else None
		return self.valid_target(self.module.get_target_document(self.job, self.source))

	def valid_targets(self, targets) -> list[dict]:
		if targets is None:
			return []
		if not isinstance(targets, list | tuple):
			raise_shape_error(_("get_multiple_target_documents() must return a list of target dicts"))
		return [target for target in map(self.valid_target, targets) if target]

	def valid_target(self, target) -> dict | None:
		"""A well-formed target dict, or None for "no target"; SyncControllerError for a wrong shape."""
		if not target:
			return None
		if not isinstance(target, dict) or set(target) - TARGET_KEYS:
			raise_shape_error(
				_("A target must be a dict with the keys {0}; got {1}").format(
					", ".join(sorted(TARGET_KEYS)), repr(target)
				)
			)
		if "target_document_type" in target and not target["target_document_type"]:
			return None
		context = target.get("context")
		if context is not None and not isinstance(context, dict):
			raise_shape_error(_("A target's context must be a dict"))
		return {
			"operation": _operation(target.get("operation")),
			"target_document_type": target.get("target_document_type") or self.job.target_document_type,
			"target_document_name": target.get("target_document_name"),
			"context": context,
		}

	def sync(self, target: dict) -> Outcome:
		job = self.job
		operation, doctype, name = (
			target["operation"],
			target["target_document_type"],
			target["target_document_name"],
		)
		if not operation:
			raise_shape_error(_("A target needs an operation"))
		if not doctype:
			raise_shape_error(_("No target document type: set one on the Sync Job Type or return it"))
		if operation in ("Update", "Delete") and not name:
			raise_shape_error(_("{0} needs a target document name").format(_(operation)))
		if target.get("context"):
			job.context = frappe.as_json({**job.get_context(), **target["context"]})
		job.operation, job.target_document_type, job.target_document_name = operation, doctype, name
		outcome = Outcome(
			S.FINISHED, operation=operation, target_document_type=doctype, target_document_name=name
		)

		if not job.get(ENABLED_FLAG[operation]):
			outcome.status, outcome.reason = S.SKIPPED, _("{0} is disabled for this job").format(_(operation))
			return outcome
		if operation == "Delete" and not frappe.db.exists(doctype, name):
			outcome.status, outcome.reason = S.NO_TARGET, _("{0} {1} does not exist").format(doctype, name)
			return outcome

		if operation == "Insert":
			target_doc = frappe.new_doc(doctype)
		else:
			target_doc = frappe.get_doc(doctype, name, for_update=True)
			outcome.before = snapshot(target_doc)
		outcome.target_doc = target_doc
		plan, synced = None, None
		review = operation == "Update" and self.on_conflict == conflicts.STOP and not job.dry_run
		# a job stopped for review writes nothing
		review_point = Savepoint(REVIEW_SAVEPOINT) if review else None
		if operation != "Delete":
			self.module.update_target_doc(job, self.source, target_doc)
			outcome.after = snapshot(target_doc)
		if operation == "Update":
			plan, synced = self.check_conflicts(target_doc, outcome)
		outcome.diff = diff_snapshots(outcome.before, outcome.after)
		job.conflict_count = len(plan.conflicts) if plan else 0
		if plan and plan.conflicts:
			outcome.diff["conflicts"] = [conflict.as_dict() for conflict in plan.conflicts]
		job.flags.snapshots = (outcome.before, outcome.after)

		if operation == "Update" and is_empty(outcome.diff) and not job.update_without_changes_enabled:
			outcome.status, outcome.reason = S.SKIPPED, _("No changes")
			if plan and plan.keep and not job.dry_run:
				# nothing to write, but the kept edits are remembered: the next sync does not ask again
				sync_link.record_write(
					job, *conflicts.next_state(conflicts.flatten(outcome.before), synced, plan)
				)
			return outcome
		if job.dry_run:
			outcome.status, outcome.reason = S.SKIPPED, _("Dry run")
			return outcome
		if plan and plan.open:
			review_point.rollback()
			sync_link.record_stop(job)
			outcome.status = S.CONFLICT
			outcome.reason = _(
				"{0} field(s) edited on the target since the last sync: choose per field"
			).format(len(plan.open))
			return outcome

		with echo.writing(job, target_doc):
			self.hook("before_sync", target_doc)
			target_doc.flags.ignore_permissions = True
			if operation == "Insert":
				target_doc.insert()
			elif operation == "Update":
				target_doc.save()
			else:
				frappe.delete_doc(doctype, name, ignore_permissions=True)
			self.hook("after_sync", target_doc)
		outcome.target_document_name = job.target_document_name = target_doc.name
		if operation == "Delete":
			sync_link.forget(job)
		else:
			outcome.after = snapshot(target_doc)
			job.flags.snapshots = (outcome.before, outcome.after)
			written = conflicts.flatten(outcome.after)
			sync_link.record_write(
				job, *(conflicts.next_state(written, synced, plan) if plan else (written, None))
			)
		return outcome

	def check_conflicts(self, target_doc, outcome: Outcome):
		"""Conflicts of this Update with edits made on the target since the last sync; the fields
		to keep as the target has them are put back on `target_doc`. Returns (plan, synced state)."""
		job = self.job
		synced, kept = sync_link.load_state(job)
		decisions = frappe.parse_json(job.conflict_decisions) if job.get("conflict_decisions") else {}
		plan = conflicts.detect(
			conflicts.flatten(outcome.before),
			conflicts.flatten(outcome.after),
			synced,
			kept,
			self.on_conflict,
			decisions,
		)
		if plan.keep:
			for path, (now, _wants) in plan.keep.items():
				set_path(target_doc, path, now)
			outcome.after = snapshot(target_doc)
		return plan, synced


def set_path(doc, path: str, value):
	"""Put a value of the flat state (`engine.conflicts`) back on the document or its child row (a
	whole row, for a row path)."""
	table, row_name, field = conflicts.split_path(path)
	if table is None:
		doc.set(field, value)
		return
	if field == conflicts.ROW:  # a kept row the sync removed: back as the target had it
		if not any(row.name == row_name for row in doc.get(table) or []):
			doc.append(table, {**value, "name": row_name})
		return
	for row in doc.get(table) or []:
		if row.name == row_name:
			row.set(field, value)


def raise_shape_error(message: str):
	frappe.throw(message, SyncControllerError)


def _operation(value, allow_empty: bool = False) -> str:
	try:
		operation = parse_operation(value)
	except RequestError as e:
		raise_shape_error(_(e.template).format(*e.args_))
	if not operation and not allow_empty:
		raise_shape_error(_("A target needs an operation: Insert, Update or Delete"))
	return operation
