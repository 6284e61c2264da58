"""The diff table users read in Desk: grouped, complete and escaped."""

import frappe

from sync_tweaks.utils.diff_html import render_diff
from sync_tweaks.utils.sync_job import create_sync_job
from tests.utils import make_source


def test_table_groups_child_rows_and_escapes_values():
	html = render_diff(
		{
			"changed": [["title", "old <b>", "<script>alert(1)</script>"]],
			"added": [["items", {"item_code": "C", "qty": 2}]],
			"removed": [["items", {"item_code": "B"}]],
			"row_changed": [["items", 1, "r1", [["qty", 1, 5]]]],
		}
	)
	assert "<script>" not in html and "&lt;script&gt;" in html
	for text in ("Rows added", "Rows removed", "Rows changed", "items #1 · qty", "title"):
		assert text in html
	assert render_diff({"changed": []}).count("No changes") == 1
	assert render_diff(None) == ""


def test_the_form_and_the_status_endpoint_carry_the_rendered_diff():
	from sync_tweaks.utils.sync_job import get_status

	job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	job.db_set("diff_summary", frappe.as_json({"changed": [["qty", 1, 2]]}))
	job.run_method("onload")
	assert "qty" in job.get_onload()["diff_html"]
	status = get_status(job.name)
	assert "qty" in status["diff_html"] and status["is_final"] is False
