"""Controller of the demo Sync Job Type "ToDo to Note": one Note per ToDo, titled with the ToDo's name."""

import frappe


def get_target_document(sync_job, source_doc):
	name = frappe.db.get_value("Note", {"title": source_doc.name})
	if source_doc.flags.get("deleted"):
		return {"operation": "Delete", "target_document_name": name} if name else None
	return {"operation": "Update", "target_document_name": name} if name else {"operation": "Insert"}


def update_target_doc(sync_job, source_doc, target_doc):
	target_doc.title = source_doc.name
	target_doc.content = source_doc.description
