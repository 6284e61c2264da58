"""Single target: one Sync Test Target per Sync Test Source, matched by its `source` field."""

import frappe

from sync_tweaks_tests.recorder import behave, record


def get_target_document(sync_job, source_doc):
	record(sync_job, "get_target_document")
	target_name = frappe.db.get_value("Sync Test Target", {"source": source_doc.name})
	if source_doc.flags.get("deleted"):
		return {"operation": "Delete", "target_document_name": target_name} if target_name else None
	if target_name:
		return {"operation": "Update", "target_document_name": target_name}
	return {"operation": "Insert"}


def update_target_doc(sync_job, source_doc, target_doc):
	record(sync_job, "update_target_doc")
	target_doc.source = source_doc.name
	target_doc.title = source_doc.title
	target_doc.qty = source_doc.qty
	target_doc.amount = source_doc.amount
	target_doc.date = source_doc.date
	if sync_job.get_context().get("append_seq") is not None:
		# chaos tests: one row per job that ran, so a doubled or reordered run shows
		target_doc.append("items", {"item_code": f"seq-{sync_job.get_context()['append_seq']}", "qty": 1})
		return
	existing = {row.item_code: row for row in target_doc.items}
	wanted = {row.item_code: row.qty for row in source_doc.items}
	for code, row in existing.items():
		if code not in wanted:
			target_doc.remove(row)
		else:
			row.qty = wanted[code]
	for code, qty in wanted.items():
		if code not in existing:
			target_doc.append("items", {"item_code": code, "qty": qty})


def after_start(sync_job, source_doc):
	record(sync_job, "after_start")
	behave(sync_job)
	if (source_doc.get("notes") or "").startswith("fail: "):
		raise ValueError(source_doc.notes[len("fail: ") :])  # backfills: a source that always fails


def before_sync(sync_job, source_doc, target_doc):
	record(sync_job, "before_sync")


def after_sync(sync_job, source_doc, target_doc):
	record(sync_job, "after_sync", target=target_doc.name)


def finished(sync_job, source_doc, target_doc):
	record(sync_job, "finished", target=target_doc.name if target_doc else None)


def rate_limit_key(sync_job):
	"""Rate limit buckets per endpoint (a context key), when the type has a rate limit."""
	return sync_job.get_context().get("endpoint")
