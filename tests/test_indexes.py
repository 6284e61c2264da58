"""The dispatcher's queries are served by indexes (so their cost stays flat with the backlog)."""

import frappe


def test_sync_job_has_the_dispatch_indexes():
	if frappe.db.db_type == "sqlite":
		rows = frappe.db.sql("select name from sqlite_master where type='index' and tbl_name='tabSync Job'")
	else:
		rows = frappe.db.sql("show index from `tabSync Job`")
		rows = [(row[2],) for row in rows]
	names = {row[0] for row in rows}
	for index in (
		"concurrency_key_status_creation",
		"status_queue_next_in_key_creation",
		"status_retry_after",
	):
		assert any(name == index or name.endswith("." + index) for name in names), names
