"""Desk in a real browser (real site only): a Conflict job's form shows its three-column table with a
choice per field and re-runs with the choices; a synced ToDo's form shows its lineage section and
refreshes it live when a new job of the pair ends. Screenshots go to /tmp/desk-*.png."""

import json

import frappe
import pytest

from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.test_conflicts import edit_source, edit_target, sync, target_of
from tests.test_desk_browser import (  # noqa: F401 (fixtures)
	WHY_NOT,
	browser_context,
	desk,
	open_form,
	page,
	shot,
	wait_for_indicator,
	wait_for_realtime,
)
from tests.utils import make_source, run_queued, set_type

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "")]
LINEAGE_TYPE = "Test ToDo Lineage"


def test_conflict_form_shows_the_three_columns_and_reruns_with_the_choices(page):  # noqa: F811
	set_type("Test Single Sync", on_conflict="Stop for Review")
	source = make_source("before", qty=1, amount=1.5)
	sync(source)
	edit_target(source, qty=5, amount=9.0)
	edit_source(source, title="after", qty=2)
	job = sync(source)
	assert (job.status, job.conflict_count) == ("Conflict", 2)

	open_form(page, "Sync Job", job.name)
	wait_for_indicator(page, "Conflict")
	table = page.locator("table.sync-job-conflicts").filter(visible=True).first
	table.wait_for(state="visible")
	heads = [th.strip() for th in table.locator("thead th").all_inner_texts()]
	assert heads == ["Field", "Last Synced", "Target Now", "Source Wants", "Choice"], heads
	rows = {
		cells[0]: cells[1:4]
		for cells in (
			[cell.strip() for cell in row.locator("td").all_inner_texts()]
			for row in table.locator("tbody tr").all()
		)
	}
	assert rows == {"Qty": ["1", "5", "2"], "Amount": ["1.5", "9", "1.5"]}, rows
	assert table.locator("input[type=radio]").count() == 4
	table.evaluate("(element) => element.scrollIntoView({block: 'center'})")
	shot(page, "conflict-form", top=False)

	wait_for_realtime(page, "Sync Job", job.name)
	table.locator("tr[data-path='qty'] input[value=target]").check()
	table.locator("tr[data-path='amount'] input[value=source]").check()
	page.locator(".page-actions button").filter(has_text="Resolve and Run Again").first.click()
	page.wait_for_function(  # Waiting, or Queued when the dispatcher pushed it already
		"() => ['Waiting', 'Queued'].includes(cur_frm.page.indicator.text().trim())"
	)
	frappe.db.rollback()
	decisions = json.loads(frappe.db.get_value("Sync Job", job.name, "conflict_decisions"))
	assert {path: d["choice"] for path, d in decisions.items()} == {"qty": "target", "amount": "source"}
	run_queued()
	frappe.db.commit()
	wait_for_indicator(page, "Finished")  # live, without a reload
	table = page.locator("table.sync-job-conflicts").filter(visible=True).first
	choices = [cells.strip() for cells in table.locator("tbody tr td:last-child").all_inner_texts()]
	assert sorted(choices) == ["Kept target", "Took source"], choices
	table.evaluate("(element) => element.scrollIntoView({block: 'center'})")
	shot(page, "conflict-resolved", top=False)
	target = target_of(source)
	assert (target.title, target.qty, target.amount) == ("after", 5, 1.5)


@pytest.fixture
def lineage_type():
	if not frappe.db.exists("Sync Job Type", LINEAGE_TYPE):
		frappe.get_doc(
			{
				"doctype": "Sync Job Type",
				"sync_job_type_name": LINEAGE_TYPE,
				"module": "Sync Tweaks",
				"is_standard": "No",
				"source_document_type": "ToDo",
				"target_document_type": "Note",
				"controller": "sync_tweaks.demo.todo_to_note",
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
	return LINEAGE_TYPE


def test_lineage_section_on_a_todo_form_follows_new_jobs_live(page, lineage_type):  # noqa: F811
	todo = frappe.get_doc({"doctype": "ToDo", "description": "lineage " + frappe.generate_hash(length=6)})
	todo.insert(ignore_permissions=True)
	first = enqueue_sync_job(lineage_type, source_doc=todo)
	frappe.db.commit()
	run_queued()
	frappe.db.commit()
	note = frappe.db.get_value("Note", {"title": todo.name})
	assert note and frappe.db.get_value("Sync Job", first.name, "status") == "Finished"

	open_form(page, "ToDo", todo.name)
	section = page.locator(".sync-lineage").filter(visible=True).first
	section.wait_for(state="visible")
	text = section.inner_text()
	assert "Sync Lineage" in text and lineage_type in text, text
	# the Note is private to its owner (Administrator): the desk user sees the link, not its name
	assert "Note (not permitted)" in text and note not in text, text
	assert first.name in text and "Finished" in text and "All jobs" in text, text
	shot(page, "lineage-todo")
	href = section.locator("a").filter(has_text="All jobs").first.get_attribute("href")
	assert href.startswith("/app/sync-job?") and "source_document_name=" in href, href

	page.evaluate("() => { window.__desk_marker = 'same page'; }")
	wait_for_realtime(page, "ToDo", todo.name)
	second = enqueue_sync_job(lineage_type, source_doc=todo, update_without_changes_enabled=True)
	frappe.db.commit()
	run_queued()
	frappe.db.commit()
	page.wait_for_function(
		"(name) => (document.querySelector('.sync-lineage') || {}).innerText?.includes(name)",
		arg=second.name,
		timeout=30_000,
	)
	assert page.evaluate("() => window.__desk_marker") == "same page", "the page was reloaded"
	shot(page, "lineage-todo-live")
	assert not page.console_errors, page.console_errors
