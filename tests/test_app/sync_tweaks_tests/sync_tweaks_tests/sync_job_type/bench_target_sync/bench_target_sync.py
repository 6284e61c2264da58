"""Benchmark type (benchmarks/run.py, conflict cost): one Sync Test Target per source, updated in place."""

import frappe


def get_target_document(sync_job, source_doc):
	name = frappe.db.get_value("Sync Test Target", {"source": source_doc.name})
	return {"operation": "Update", "target_document_name": name} if name else {"operation": "Insert"}


def update_target_doc(sync_job, source_doc, target_doc):
	target_doc.source = source_doc.name
	target_doc.title = source_doc.title
	target_doc.qty = source_doc.qty
	target_doc.amount = source_doc.amount
