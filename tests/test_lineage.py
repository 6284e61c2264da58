"""Lineage: the links of a synced source or target, with the last job of each, on any form's onload
(one indexed query; none for doctypes never synced); and no sync loops between two types syncing a
pair both ways."""

import frappe
import pytest
from frappe.desk.form.load import run_onload
from sync_tweaks_tests import two_way

from sync_tweaks import lineage
from sync_tweaks.sync_tweaks.doctype.sync_link import sync_link
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.test_security import as_user
from tests.utils import make_source, run_queued


def synced_source(title="lineage"):
	source = make_source(title, qty=2)
	job = enqueue_sync_job("Test Single Sync", source_doc=source)
	frappe.db.commit()
	run_queued()
	frappe.db.rollback()
	target = frappe.db.get_value("Sync Test Target", {"source": source.name})
	return source, target, job.name


def test_lineage_of_a_source_and_of_its_target_names_the_type_and_last_job():
	source, target, job = synced_source()
	for doctype, name, side, other in (
		("Sync Test Source", source.name, "source", ("Sync Test Target", target)),
		("Sync Test Target", target, "target", ("Sync Test Source", source.name)),
	):
		rows = lineage.get_rows(doctype, name)
		assert len(rows) == 1, rows
		row = rows[0]
		assert (row["sync_job_type"], row["side"], row["job"], row["status"]) == (
			"Test Single Sync",
			side,
			job,
			"Finished",
		)
		assert (row["other_doctype"], row["other_name"]) == other
		assert row["owner"] == "Administrator" and row["when"]
		assert "sync-job-diff" in row["diff_html"]
		assert row["jobs_filter"] == {f"{side}_document_type": doctype, f"{side}_document_name": name}


def test_a_new_job_of_the_pair_becomes_its_last_job_and_a_delete_forgets_the_link():
	source, target, _first = synced_source()
	source.reload()
	source.title = "renamed"
	source.save(ignore_permissions=True)
	frappe.db.commit()
	second = enqueue_sync_job("Test Single Sync", source_doc=source)
	frappe.db.commit()
	run_queued()
	assert [row["job"] for row in lineage.get_rows("Sync Test Target", target)] == [second.name]
	frappe.delete_doc("Sync Test Source", source.name, ignore_permissions=True)
	frappe.db.commit()
	enqueue_sync_job("Test Single Sync", source_document_name=source.name)
	frappe.db.commit()
	run_queued()
	assert not frappe.db.exists("Sync Test Target", target)
	assert lineage.get_rows("Sync Test Target", target) == []


def test_form_onload_carries_the_lineage_only_for_linked_documents():
	source, target, job = synced_source()
	doc = frappe.get_doc("Sync Test Target", target)
	run_onload(doc)
	assert [row["job"] for row in doc.get("__onload")["sync_lineage"]] == [job]

	never_synced = frappe.get_doc("Role", "Sync Tester")
	unlinked = make_source("not synced yet")
	queries = []
	real_sql = frappe.db.sql

	def counting_sql(query, *args, **kwargs):
		if "Sync Link" in str(query):
			queries.append(str(query))
		return real_sql(query, *args, **kwargs)

	sync_link.linked_doctypes()  # warm cache
	frappe.db.sql = counting_sql
	try:
		run_onload(never_synced)
		assert queries == [], "a doctype that is never synced costs no query"
		run_onload(unlinked)
		assert len(queries) == 1, "a synced doctype costs one query"
	finally:
		frappe.db.sql = real_sql
	assert "sync_lineage" not in never_synced.get("__onload")
	assert "sync_lineage" not in unlinked.get("__onload")


def test_lineage_needs_read_on_the_document_and_on_sync_jobs():
	source, target, _job = synced_source()
	with as_user("lineage-nobody@example.com", []), pytest.raises(frappe.PermissionError):
		lineage.get_lineage("Sync Test Target", target)
	with as_user("lineage-tester@example.com", ["Sync Tester"]):
		doc = frappe.get_doc("Sync Test Source", source.name)
		run_onload(doc)  # may read the source, not the jobs: no lineage
		assert "sync_lineage" not in doc.get("__onload")
		with pytest.raises(frappe.PermissionError):
			lineage.get_lineage("Sync Test Source", source.name)


@pytest.fixture
def two_way_types():
	two_way.ensure_types()
	yield
	frappe.db.rollback()
	frappe.db.delete("Sync Test Source", {"title": ["like", two_way.PREFIX + "%"]})
	frappe.db.commit()


def jobs_of_pair() -> list[tuple[str, str]]:
	frappe.db.rollback()
	return [
		(row.sync_job_type, row.status)
		for row in frappe.get_all(
			"Sync Job",
			filters={"sync_job_type": ["in", list(two_way.TYPES)]},
			fields=["sync_job_type", "status"],
			order_by="creation asc",
		)
	]


def test_two_way_pair_makes_exactly_one_job_per_edit(two_way_types):
	source = make_source(two_way.PREFIX + " one", qty=1)  # its doc hook enqueues the forward job
	run_queued()
	assert jobs_of_pair() == [(two_way.FORWARD, "Finished")]  # the target's insert enqueued no echo
	target = frappe.get_doc("Sync Test Target", {"source": source.name})
	assert (target.title, target.qty) == (two_way.PREFIX + " one", 1)

	target.qty = 4  # a person edits the target: one job back
	target.save(ignore_permissions=True)
	frappe.db.commit()
	run_queued()
	assert jobs_of_pair() == [(two_way.FORWARD, "Finished"), (two_way.BACK, "Finished")]
	assert frappe.db.get_value("Sync Test Source", source.name, "qty") == 4

	source.reload()
	source.title = two_way.PREFIX + " two"
	source.save(ignore_permissions=True)
	frappe.db.commit()
	run_queued()
	assert len(jobs_of_pair()) == 3 and jobs_of_pair()[-1] == (two_way.FORWARD, "Finished")


def test_a_controller_can_opt_in_to_the_echo(two_way_types):
	source = make_source("plain source", qty=1)  # no hook job: not a two-way title
	job = enqueue_sync_job(
		two_way.FORWARD, source_doc=source, context={"allow_echo": True}, queue_on_insert=True
	)
	source.db_set("title", two_way.PREFIX + " echo")
	frappe.db.commit()
	run_queued(max_rounds=1)
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"
	assert [job_type for job_type, _status in jobs_of_pair()] == [two_way.FORWARD, two_way.BACK]


def test_lineage_hides_the_last_job_from_a_user_who_may_not_read_that_job(monkeypatch):
	source, target, job = synced_source()
	real = frappe.has_permission
	asked = []

	def only_own_jobs(doctype=None, ptype="read", doc=None, *args, **kwargs):
		if doctype == "Sync Job" and doc is not None:
			asked.append(doc.name)
			return doc.owner == "lineage-owner@example.com"
		return real(doctype, ptype, doc, *args, **kwargs)

	with as_user("lineage-sm@example.com", ["System Manager", "Sync Tester"]):
		monkeypatch.setattr(frappe, "has_permission", only_own_jobs)
		rows = lineage.get_rows("Sync Test Target", target)
	assert asked == [job]
	assert [(row["sync_job_type"], row["job"], row["status"], row["diff_html"]) for row in rows] == [
		("Test Single Sync", None, None, "")
	]


def test_lineage_hides_the_name_and_diff_of_a_document_the_user_may_not_read(monkeypatch):
	"""A user who may read the target and Sync Jobs but not the source learns neither the source's
	name nor its values (the job's diff) from the target's lineage."""
	source, target, _job = synced_source("secret-source-name")
	real = frappe.has_permission

	def no_sources(doctype=None, ptype="read", doc=None, *args, **kwargs):
		if doctype == "Sync Test Source":
			return False
		return real(doctype, ptype, doc, *args, **kwargs)

	with as_user("lineage-sm@example.com", ["System Manager", "Sync Tester"]):
		rows = lineage.get_lineage("Sync Test Target", target)
		assert [row["other_name"] for row in rows] == [source.name]  # control: readable, named
		monkeypatch.setattr(frappe, "has_permission", no_sources)
		rows = lineage.get_lineage("Sync Test Target", target)
	assert rows and rows[0]["job"], rows  # the job itself stays visible
	assert [(row["other_doctype"], row["other_name"], row["diff_html"]) for row in rows] == [
		("Sync Test Source", None, "")
	]
