"""Desk in a real browser (real site only): the Sync Job Type form's Backfill button starts a dry-run
backfill, whose form follows it live (progress, chart, outcomes, field changes, sample diffs) without
a reload; Apply creates the real jobs, and the applied backfill's form shows them done.
Screenshots go to /tmp/desk-*.png."""

import json
import secrets

import frappe
import pytest

from tests.backfills import TYPE
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
from tests.utils import make_source, set_type

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "")]


def rollup_rows(browser_page, css: str) -> dict[str, str]:
	table = browser_page.locator(f"table.{css}").filter(visible=True).first
	table.wait_for(state="visible")
	return {
		cells[0]: cells[1]
		for cells in (
			[cell.strip() for cell in row.locator("td").all_inner_texts()]
			for row in table.locator("tbody tr").all()
		)
	}


def test_backfill_button_dry_run_form_follows_live_and_apply_creates_the_jobs(page, workers):  # noqa: F811
	set_type(TYPE, concurrency="None", max_retries=0)
	prefix = secrets.token_hex(4)
	sources = [make_source(f"{prefix} {i}", qty=i + 1).name for i in range(3)]
	make_source(f"{prefix} broken", notes="fail: the browser test's broken source")

	open_form(page, "Sync Job Type", TYPE)
	page.locator(".page-actions button").filter(visible=True).filter(has_text="Backfill").first.click()
	dialog = page.locator(".modal.show .modal-dialog")
	dialog.wait_for(state="visible")
	page.wait_for_function("() => window.cur_dialog && cur_dialog.fields_dict.source_filters")
	assert dialog.locator("input[data-fieldname='dry_run']").is_checked()
	page.evaluate(
		"(filters) => cur_dialog.set_value('source_filters', filters)",
		json.dumps({"title": ["like", prefix + "%"]}),
	)
	shot(page, "backfill-prompt")
	shot(page, "backfill-prompt")
	dialog.locator(".btn-primary").filter(visible=True).first.click()
	page.wait_for_function("() => window.cur_frm && cur_frm.doctype === 'Sync Backfill' && !cur_frm.is_new()")
	name = page.evaluate("() => cur_frm.docname")
	assert frappe.db.get_value("Sync Backfill", name, "dry_run") == 1
	page.evaluate("() => { window.__desk_marker = 'same page'; }")
	wait_for_realtime(page, "Sync Backfill", name)

	workers(1)
	wait_for_indicator(page, "Completed")
	outcomes = rollup_rows(page, "sync-backfill-outcomes")
	assert outcomes == {"Would insert": "3", "Failed": "1"}, outcomes
	failures = page.locator("table.sync-backfill-failures tbody tr").all_inner_texts()
	assert len(failures) == 1 and "the browser test's broken source" in failures[0], failures
	fields = rollup_rows(page, "sync-backfill-fields")
	assert fields.get("Qty (qty)") == "3" and fields.get("Title (title)") == "3", fields
	assert page.locator(".sync-backfill-chart svg").count() == 1, "the outcome chart is drawn"
	assert page.locator(".sync-backfill-sample table.sync-job-diff").count() == 3
	assert page.evaluate("() => window.__desk_marker") == "same page", "the form was reloaded by hand"
	assert not frappe.db.count("Sync Test Target", {"source": ["in", sources]}), "the dry run wrote targets"
	shot(page, "backfill-dry-run")

	page.locator(".page-actions button").filter(visible=True).filter(has_text="Apply").first.click()
	prompt = page.locator(".modal.show .modal-dialog")
	prompt.wait_for(state="visible")
	prompt.locator(".btn-primary").filter(visible=True).first.click()
	page.wait_for_function(
		"(name) => cur_frm.doctype === 'Sync Backfill' && cur_frm.docname !== name", arg=name
	)
	wait_for_indicator(page, "Completed")
	assert rollup_rows(page, "sync-backfill-outcomes") == {"Insert": "3"}
	shot(page, "backfill-applied")
	frappe.db.rollback()
	assert frappe.db.count("Sync Test Target", {"source": ["in", sources]}) == 3
	assert not page.console_errors, page.console_errors
