"""Lineage on any form: which Sync Job Types link a document, and the last job of each.

`onload` is a `doc_events["*"]` hook: Frappe runs it on every form load (`frappe.desk.form.load.
run_onload`, after the read permission check). For a doctype that no Sync Link names it costs a
cached set lookup and nothing else; otherwise one indexed query. `public/js/sync_lineage.js`
(an `app_include_js`) renders the section on any form and refreshes it live.
"""

import frappe
from frappe import _

from sync_tweaks.sync_tweaks.doctype.sync_link import sync_link
from sync_tweaks.utils.diff_html import render_diff

ONLOAD_KEY = "sync_lineage"


def onload(doc, method=None):
	"""Add the document's lineage to `__onload` when it has any (and the user may read Sync Jobs)."""
	if doc.doctype in SKIPPED or doc.doctype not in sync_link.linked_doctypes():
		return
	if not frappe.has_permission("Sync Job", "read"):
		return
	rows = get_rows(doc.doctype, doc.name)
	if rows:
		doc.set_onload(ONLOAD_KEY, rows)


def after_rename(doc, method=None, old=None, new=None, merge=False):
	"""A `doc_events["*"]` hook: links are named after their pair, so they follow a rename."""
	sync_link.follow_rename(doc.doctype, new or doc.name)


@frappe.whitelist()
def get_lineage(doctype: str, name: str) -> list[dict]:
	"""The lineage of a document the user may read (for the live refresh of an open form)."""
	if not isinstance(doctype, str) or not isinstance(name, str):
		frappe.throw(_("doctype and name are required"), frappe.ValidationError)
	if not frappe.has_permission(doctype, "read", doc=name):
		frappe.throw(_("Not permitted to read {0} {1}").format(doctype, name), frappe.PermissionError)
	frappe.has_permission("Sync Job", "read", throw=True)
	return get_rows(doctype, name)


def get_rows(doctype: str, name: str) -> list[dict]:
	"""One row per link: the type, the other document, the last job (status, when, who, diff)."""
	rows = []
	for link in sync_link.lineage(doctype, name):
		other = ("target" if link.side == "source" else "source") + "_document_"
		if link.job and not may_read_job(link):
			link.update(job=None, status=None, job_owner=None, ended_at=None, job_modified=None)
			link.update(conflict_count=0, diff_summary=None)
		readable = may_read_other(link[other + "type"], link[other + "name"])
		if not readable:
			link[other + "name"] = None  # neither its name nor its values (the diff) are shown
			link.update(diff_summary=None)
		rows.append(
			{
				"sync_job_type": link.sync_job_type,
				"side": link.side,
				"other_doctype": link[other + "type"],
				"other_name": link[other + "name"],
				"last_synced_at": link.last_synced_at,
				"job": link.job,
				"status": link.status,
				"owner": link.job_owner,
				"when": link.ended_at or link.job_modified,
				"conflict_count": link.conflict_count or 0,
				"diff_html": render_diff(link.diff_summary) if link.job and readable else "",
				"jobs_filter": {f"{link.side}_document_type": doctype, f"{link.side}_document_name": name},
			}
		)
	return rows


def may_read_job(link) -> bool:
	"""Read permission on the link's last job (only-if-owner roles, user permissions), judged from
	the row the lineage query read, without loading the job."""
	if frappe.session.user == "Administrator":
		return True
	job = frappe.get_doc(
		{
			"doctype": "Sync Job",
			"name": link.job,
			"owner": link.job_owner,
			"sync_job_type": link.sync_job_type,
			"source_document_type": link.source_document_type,
			"source_document_name": link.source_document_name,
			"target_document_type": link.target_document_type,
			"target_document_name": link.target_document_name,
		}
	)
	return bool(frappe.has_permission("Sync Job", "read", doc=job))


def may_read_other(doctype: str, name: str | None) -> bool:
	"""Read permission on the link's other document (a deleted one: read permission on its type)."""
	if frappe.session.user == "Administrator":
		return True
	if name and frappe.db.exists(doctype, name):
		return bool(frappe.has_permission(doctype, "read", doc=name))
	return bool(frappe.has_permission(doctype, "read"))


# the framework's own records never carry lineage
SKIPPED = frozenset({"Sync Job", "Sync Link", "Sync Job Type"})
