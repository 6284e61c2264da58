"""Create the demo type and a first demo job: `bench --site SITE execute sync_tweaks.demo.setup.create_demo`."""

import frappe

from sync_tweaks.utils.sync_job import enqueue_sync_job

DEMO_TYPE = "ToDo to Note"
CONTROLLER = "sync_tweaks.demo.todo_to_note"


def create_demo() -> str:
	"""Make sure the demo type exists, enqueue a job for a new ToDo, commit; returns the job's name."""
	record_activity()
	if not frappe.db.exists("Sync Job Type", DEMO_TYPE):
		frappe.get_doc(
			{
				"doctype": "Sync Job Type",
				"sync_job_type_name": DEMO_TYPE,
				"module": "Sync Tweaks",
				"is_standard": "No",
				"source_document_type": "ToDo",
				"target_document_type": "Note",
				"controller": CONTROLLER,
			}
		).insert()
	todo = frappe.get_doc(
		{"doctype": "ToDo", "description": "Try sync_tweaks: this ToDo becomes a Note"}
	).insert()
	job = enqueue_sync_job(DEMO_TYPE, source_doc=todo, trigger_type="Manual")
	frappe.db.commit()
	return job.name


def record_activity():
	"""Record the set-up as user activity: Frappe 15.29 treats a site without a recent Activity Log
	as dormant and then runs scheduled jobs once a day, so the demo's retries and recovery would wait."""
	if frappe.db.exists("DocType", "Activity Log"):
		frappe.get_doc(
			{
				"doctype": "Activity Log",
				"subject": "sync_tweaks dev-bench: demo set up",
				"operation": "Login",
				"status": "Success",
				"user": frappe.session.user,
			}
		).insert(ignore_permissions=True)
