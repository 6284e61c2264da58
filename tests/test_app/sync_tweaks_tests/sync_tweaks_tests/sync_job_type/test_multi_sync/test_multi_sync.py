"""Multiple targets: one Sync Test Target per item row of the source, titled "<source title>/<item code>"."""

import frappe

from sync_tweaks_tests.recorder import behave, record


def get_multiple_target_documents(sync_job, source_doc):
	record(sync_job, "get_multiple_target_documents")
	targets = []
	for row in source_doc.items:
		name = frappe.db.get_value(
			"Sync Test Target", {"source": source_doc.name, "title": _title(source_doc, row)}
		)
		if name:
			targets.append(
				{"operation": "Update", "target_document_name": name, "context": {"item_code": row.item_code}}
			)
		else:
			targets.append({"operation": "Insert", "context": {"item_code": row.item_code}})
	return targets


def update_target_doc(sync_job, source_doc, target_doc):
	record(sync_job, "update_target_doc")
	code = sync_job.get_context()["item_code"]
	row = next(row for row in source_doc.items if row.item_code == code)
	target_doc.source = source_doc.name
	target_doc.title = _title(source_doc, row)
	target_doc.qty = row.qty


def after_start(sync_job, source_doc):
	record(sync_job, "after_start")
	behave(sync_job)


def before_relay(sync_job, source_doc, targets):
	record(sync_job, "before_relay", count=len(targets))
	if sync_job.get_context().get("drop_first_target"):
		return targets[1:]


def after_relay(sync_job, source_doc, child_jobs):
	record(sync_job, "after_relay", children=[child.name for child in child_jobs])
	if sync_job.get_context().get("enqueue_in_after_relay"):
		frappe.enqueue(
			"sync_tweaks_tests.recorder.clear",
			job_id="after-relay-" + sync_job.name,
			enqueue_after_commit=True,
		)
	if sync_job.get_context().get("write_in_after_relay"):
		frappe.get_doc({"doctype": "Sync Test Target", "title": "after_relay " + sync_job.name}).insert(
			ignore_permissions=True
		)


def finished(sync_job, source_doc, target_doc):
	record(sync_job, "finished", target=target_doc.name if target_doc else None)


def on_children_done(sync_job, source_doc, children):
	record(
		sync_job,
		"on_children_done",
		children={child.name: child.status for child in children},
	)
	if sync_job.get_context().get("fail_children_done"):
		raise ValueError("on_children_done failed")
	if sync_job.get_context().get("write_children_done"):
		frappe.get_doc({"doctype": "Sync Test Target", "title": "children done " + sync_job.name}).insert(
			ignore_permissions=True
		)


def _title(source_doc, row) -> str:
	return f"{source_doc.title}/{row.item_code}"
