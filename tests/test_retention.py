"""Log Settings retention: only done jobs go, never open ones or parents of open children."""

from datetime import timedelta

import frappe
from frappe.utils import now_datetime

from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import SyncJob
from sync_tweaks.utils.sync_job import create_sync_job
from tests.utils import make_source


def aged(status: str, days: int = 40, **fields) -> str:
	job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.set_value(
		"Sync Job",
		job.name,
		{"status": status, "modified": now_datetime() - timedelta(days=days), **fields},
		update_modified=False,
	)
	return job.name


def test_clear_old_logs_keeps_open_and_recent_jobs():
	old_done = aged("Finished")
	old_failed = aged("Failed")
	recent_done = aged("Finished", days=1)
	old_waiting = aged("Waiting")
	old_parent = aged("Relayed")
	aged("Queued", parent_sync_job=old_parent)
	frappe.db.commit()
	SyncJob.clear_old_logs(days=30)
	exists = {
		name: bool(frappe.db.exists("Sync Job", name))
		for name in (old_done, old_failed, recent_done, old_waiting, old_parent)
	}
	assert exists == {
		old_done: False,
		old_failed: False,
		recent_done: True,
		old_waiting: True,
		old_parent: True,
	}


def test_sync_job_is_registered_with_log_settings():
	assert frappe.get_hooks("default_log_clearing_doctypes").get("Sync Job") in (30, [30])


def test_clear_old_logs_keeps_a_relayed_parent_whose_child_waits_in_conflict():
	"""A Conflict child waits for a person: its Relayed parent stays with it."""
	old_parent = aged("Relayed", days=60)
	child = aged("Conflict", days=60, parent_sync_job=old_parent)
	frappe.db.commit()
	SyncJob.clear_old_logs(days=30)
	frappe.db.commit()
	assert frappe.db.exists("Sync Job", child)
	assert frappe.db.exists("Sync Job", old_parent), "the parent of a Conflict child was deleted"
