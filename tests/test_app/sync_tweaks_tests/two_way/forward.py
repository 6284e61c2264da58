"""Sync Test Source -> Sync Test Target (matched by the target's `source` field)."""

import frappe


def get_target_document(sync_job, source_doc):
	name = frappe.db.get_value("Sync Test Target", {"source": source_doc.name})
	return {"operation": "Update", "target_document_name": name} if name else {"operation": "Insert"}


def update_target_doc(sync_job, source_doc, target_doc):
	if sync_job.get_context().get("allow_echo"):
		sync_job.flags.allow_echo = True
	target_doc.source = source_doc.name
	target_doc.title = source_doc.title
	target_doc.qty = source_doc.qty
