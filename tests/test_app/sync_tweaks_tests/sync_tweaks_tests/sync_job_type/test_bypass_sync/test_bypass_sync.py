"""Bypass: the controller does everything, including honouring dry runs."""

import frappe

from sync_tweaks_tests.recorder import behave, record


def execute(sync_job, source_doc):
	record(sync_job, "execute")
	behave(sync_job)
	target = frappe.new_doc("Sync Test Target")
	target.source = source_doc.name if source_doc else None
	target.title = source_doc.title if source_doc else sync_job.get_context().get("title", "from context")
	if not sync_job.dry_run:
		target.insert(ignore_permissions=True)
	return {"target_doc": target, "operation": "Insert", "diff": {"changed": [["title", None, target.title]]}}


def finished(sync_job, source_doc, target_doc):
	record(sync_job, "finished", target=target_doc.name if target_doc else None)
