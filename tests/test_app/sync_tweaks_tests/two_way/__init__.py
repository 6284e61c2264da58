"""Two types syncing Sync Test Source <-> Sync Test Target both ways, for the no-loops tests.

Doc hooks (the test app's hooks.py) enqueue the job of each direction when a document whose title
starts with PREFIX is saved, as an app with a two-way sync would.
"""

import frappe

from sync_tweaks.utils.sync_job import enqueue_sync_job

FORWARD = "Test Two Way Forward"
BACK = "Test Two Way Back"
PREFIX = "two-way"
TYPES = {
	FORWARD: ("Sync Test Source", "Sync Test Target", "sync_tweaks_tests.two_way.forward"),
	BACK: ("Sync Test Target", "Sync Test Source", "sync_tweaks_tests.two_way.back"),
}
DIRECTION = {"Sync Test Source": FORWARD, "Sync Test Target": BACK}


def on_update(doc, method=None):
	"""Doc hook of both doctypes: enqueue this direction's job (the echo check drops a sync's own)."""
	if not (doc.get("title") or "").startswith(PREFIX):
		return
	if frappe.db.exists("Sync Job Type", DIRECTION[doc.doctype]):
		enqueue_sync_job(
			DIRECTION[doc.doctype], source_doc=doc, trigger_type="Document Hook", triggered_by_doc=doc
		)


def ensure_types():
	"""Create both types (non-standard, controllers in this package) if the site lacks them."""
	for name, (source, target, module) in TYPES.items():
		if not frappe.db.exists("Sync Job Type", name):
			frappe.get_doc(
				{
					"doctype": "Sync Job Type",
					"sync_job_type_name": name,
					"module": "Sync Tweaks Tests",
					"is_standard": "No",
					"source_document_type": source,
					"target_document_type": target,
					"controller": module,
					"coalesce_duplicates": 0,
				}
			).insert(ignore_permissions=True)
	frappe.db.commit()
