"""Benchmark type (benchmarks/run.py): each job inserts one Note; `insert_note` is the bare baseline."""

import frappe


def execute(sync_job, source_doc):
	"""Bypass: insert one Note titled from the job's context."""
	note = _insert(sync_job.get_context().get("title") or f"bench {sync_job.name}")
	return {"target_doc": note, "operation": "Insert"}


def insert_note(title: str, source: str | None = None):
	"""The same work as a bare `frappe.enqueue` job: load the source (a sync job's runner loads it
	before the controller runs), insert the Note; returns nothing, so RQ stores no result."""
	if source:
		frappe.get_doc("Sync Test Source", source)
	_insert(title)


def _insert(title: str):
	return frappe.get_doc({"doctype": "Note", "title": title}).insert(ignore_permissions=True)
