"""Contract tests of what conflicts and lineage rely on: a `doc_events["*"]` onload hook runs for every
form load (`run_onload`), savepoints roll back a block, `bulk_insert` writes a JSON field, and a
cache `get_value` generator fills the cache once. Public Frappe 15 API only; pass on a real site too."""

import json

import frappe
import pytest
from frappe.desk.form.load import run_onload

from sync_tweaks import lineage


@pytest.fixture(autouse=True)
def _rollback():
	frappe.set_user("Administrator")
	yield
	frappe.db.rollback()


def test_a_star_onload_hook_runs_on_every_form_load(monkeypatch):
	assert "sync_tweaks.lineage.onload" in frappe.get_doc_hooks()["*"]["onload"]
	seen = []
	monkeypatch.setattr(lineage, "onload", lambda doc, method=None: seen.append((doc.doctype, method)))
	note = frappe.get_doc(
		{"doctype": "Note", "title": "onload probe " + frappe.generate_hash(length=6)}
	).insert()
	role = frappe.get_doc("Role", "System Manager")
	for doc in (note, role):
		doc.set_onload("stale", 1)
		run_onload(doc)
		assert "stale" not in doc.get("__onload")  # reset before the hooks run
	assert seen == [("Note", "onload"), ("Role", "onload")]


def test_set_onload_values_travel_in_the_documents_dict():
	doc = frappe.get_doc("Role", "System Manager")
	run_onload(doc)
	doc.set_onload("sync_lineage", [{"job": "x"}])
	assert doc.as_dict()["__onload"]["sync_lineage"] == [{"job": "x"}]


def test_rollback_to_a_savepoint_undoes_only_the_block():
	kept = frappe.get_doc({"doctype": "Note", "title": "kept " + frappe.generate_hash(length=6)}).insert()
	frappe.db.savepoint("probe_review")
	undone = frappe.get_doc({"doctype": "Note", "title": "undone " + frappe.generate_hash(length=6)}).insert()
	frappe.db.rollback(save_point="probe_review")
	assert frappe.db.exists("Note", kept.name) and not frappe.db.exists("Note", undone.name)


def test_bulk_insert_writes_a_json_field_that_reads_back():
	name = "probe-" + frappe.generate_hash(length=8)
	state = {"qty": 1, "items:row1:qty": 2.5, "title": None}
	row = {
		"name": name,
		"creation": frappe.utils.now(),
		"modified": frappe.utils.now(),
		"owner": "Administrator",
		"modified_by": "Administrator",
		"docstatus": 0,
		"idx": 0,
		"sync_job_type": "Test Single Sync",
		"synced_state": json.dumps(state),
	}
	frappe.db.bulk_insert("Sync Link", list(row), [list(row.values())])
	assert json.loads(frappe.db.get_value("Sync Link", name, "synced_state")) == state
	locked = frappe.db.sql("select synced_state from `tabSync Link` where name=%s for update", name)
	assert json.loads(locked[0][0]) == state


def test_cache_generator_runs_once_until_the_value_is_deleted():
	key = "sync_tweaks_probe_" + frappe.generate_hash(length=6)
	calls = []

	def generate():
		calls.append(1)
		return ["ToDo"]

	try:
		assert frappe.cache().get_value(key, generator=generate) == ["ToDo"]
		assert frappe.cache().get_value(key, generator=generate) == ["ToDo"]
		frappe.cache().delete_value(key)
		assert frappe.cache().get_value(key, generator=generate) == ["ToDo"]
		assert len(calls) == 2
	finally:
		frappe.cache().delete_value(key)
