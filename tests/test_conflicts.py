"""Conflict-safe sync: a target edited by hand since the last sync, under each `on_conflict` policy;
child-table rows; resolving a Conflict job (form method, bulk); dry runs report conflicts."""

import json

import frappe
import pytest

from sync_tweaks.exceptions import SyncJobError, SyncJobTransitionError
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import bulk_action
from sync_tweaks.sync_tweaks.doctype.sync_link import sync_link
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.test_security import as_user
from tests.utils import make_source, run_queued, set_type

TYPE = "Test Single Sync"


def sync(source, **params):
	"""Enqueue a job for `source`, run it in this process; returns the stored job."""
	job = enqueue_sync_job(TYPE, source_doc=source, **params)
	frappe.db.commit()
	run_queued()
	frappe.db.rollback()
	return frappe.get_doc("Sync Job", job.name)


def target_of(source):
	return frappe.get_doc(
		"Sync Test Target", frappe.db.get_value("Sync Test Target", {"source": source.name})
	)


def edit_target(source, **fields):
	"""A person corrects the target by hand."""
	target = target_of(source)
	target.update(fields)
	target.save(ignore_permissions=True)
	frappe.db.commit()
	return target


def edit_source(source, **fields):
	source.reload()
	source.update(fields)
	source.save(ignore_permissions=True)
	frappe.db.commit()
	return source


def hand_edited(policy: str = "Overwrite"):
	"""A source synced once, its target's qty corrected by hand (5), then the source's title edited."""
	set_type(TYPE, on_conflict=policy)
	source = make_source("first", qty=1)
	first = sync(source)
	assert (first.status, first.operation, first.conflict_count) == ("Finished", "Insert", 0)
	edit_target(source, qty=5)
	edit_source(source, title="second")
	return source


def conflicts_of(job) -> list[tuple]:
	return [(c["path"], c["synced"], c["now"], c["wants"], c["choice"]) for c in job.get_conflicts()]


def test_overwrite_writes_the_source_and_records_the_conflict():
	source = hand_edited("Overwrite")
	job = sync(source)
	assert (job.status, job.conflict_count) == ("Finished", 1)
	assert conflicts_of(job) == [("qty", 1, 5, 1, "source")]
	target = target_of(source)
	assert (target.title, target.qty) == ("second", 1)
	assert ["qty", 5, 1] in json.loads(job.diff_summary)["changed"]
	# the next sync starts from what this one wrote: no conflict any more
	edit_source(source, title="third")
	assert sync(source).conflict_count == 0


def test_keep_target_edits_skips_the_edited_field_and_syncs_the_rest():
	source = hand_edited("Keep Target Edits")
	job = sync(source)
	assert (job.status, job.conflict_count) == ("Finished", 1)
	assert conflicts_of(job) == [("qty", 1, 5, 1, "target")]
	target = target_of(source)
	assert (target.title, target.qty) == ("second", 5)
	assert not any(change[0] == "qty" for change in json.loads(job.diff_summary)["changed"])

	# the kept edit stays kept while the source still wants the same value, without asking again
	edit_source(source, title="third")
	again = sync(source)
	assert (again.status, again.conflict_count) == ("Finished", 0)
	assert (target_of(source).title, target_of(source).qty) == ("third", 5)
	# the source moves on: a new conflict, kept again
	edit_source(source, qty=2)
	moved = sync(source)
	assert conflicts_of(moved) == [("qty", 1, 5, 2, "target")]
	assert target_of(source).qty == 5


def test_stop_for_review_writes_nothing_and_ends_in_conflict():
	source = hand_edited("Stop for Review")
	job = sync(source)
	assert (job.status, job.conflict_count) == ("Conflict", 1)
	assert conflicts_of(job) == [("qty", 1, 5, 1, None)]
	assert "1 field" in job.error_message
	target = target_of(source)
	assert (target.title, target.qty) == ("first", 5)  # not even the title was written
	assert sync_link.lineage("Sync Test Source", source.name)[0].job == job.name
	job.onload()
	assert job.get_onload("allowed_actions") == ["cancel_sync", "resolve", "dry_run_again"]
	assert job.get_onload("conflicts")[0]["label"] == "Qty"


@pytest.mark.parametrize("choice, qty", [("target", 5), ("source", 1)])
def test_resolving_from_the_form_reruns_the_job_with_the_choice(choice, qty):
	source = hand_edited("Stop for Review")
	job = sync(source)
	job.resolve(decisions=json.dumps({"qty": choice}))
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", job.name, "status") in ("Waiting", "Queued")
	run_queued()
	job.reload()
	assert (job.status, job.conflict_count) == ("Finished", 1)
	assert conflicts_of(job) == [("qty", 1, 5, 1, choice)]
	target = target_of(source)
	assert (target.title, target.qty) == ("second", qty)
	# the decision holds: the next sync of an unchanged source does not stop again
	edit_source(source, title="third")
	later = sync(source)
	assert (later.status, later.conflict_count) == ("Finished", 0)
	assert (target_of(source).title, target_of(source).qty) == ("third", qty)


def test_a_decision_does_not_apply_to_a_target_edited_again_since():
	source = hand_edited("Stop for Review")
	job = sync(source)
	job.resolve(decisions=json.dumps({"qty": "source"}))
	edit_target(source, qty=7)  # someone edits again before the job runs
	run_queued()
	job.reload()
	assert job.status == "Conflict"
	assert conflicts_of(job) == [("qty", 1, 7, 1, None)]
	assert target_of(source).qty == 7


def test_a_conflict_on_a_child_table_row_counts_by_the_rows_identity():
	set_type(TYPE, on_conflict="Stop for Review")
	source = make_source("rows", items=[("a", 1), ("b", 2)])
	sync(source)
	target = target_of(source)
	row_a = next(row for row in target.items if row.item_code == "a")
	row_a.qty = 9
	target.save(ignore_permissions=True)
	frappe.db.commit()
	source.reload()
	for row in source.items:
		row.qty = {"a": 3, "b": 4}[row.item_code]
	source.save(ignore_permissions=True)
	frappe.db.commit()

	job = sync(source)
	path = f"items:{row_a.name}:qty"
	assert job.status == "Conflict"
	assert conflicts_of(job) == [(path, 1, 9, 3, None)]
	job.onload()
	assert job.get_onload("conflicts")[0]["label"] == "Items #1 · Qty"
	job.resolve(decisions={path: "source"})
	frappe.db.commit()
	run_queued()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"
	assert {row.item_code: row.qty for row in target_of(source).items} == {"a": 3, "b": 4}


def test_a_dry_run_reports_the_conflict_and_writes_nothing():
	source = hand_edited("Overwrite")
	state_before = frappe.db.get_value(
		"Sync Link", {"source_document_name": source.name}, ["synced_state", "last_sync_job"]
	)
	job = sync(source, dry_run=True)
	assert (job.status, job.error_message, job.conflict_count) == ("Skipped", "Dry run", 1)
	assert conflicts_of(job) == [("qty", 1, 5, 1, "source")]
	target = target_of(source)
	assert (target.title, target.qty) == ("first", 5)
	state_after = frappe.db.get_value(
		"Sync Link", {"source_document_name": source.name}, ["synced_state", "last_sync_job"]
	)
	assert state_after == state_before


def test_bulk_take_source_and_keep_target_resolve_every_conflict():
	jobs = {}
	for choice in ("take_source", "keep_target"):
		source = hand_edited("Stop for Review")
		jobs[choice] = (source, sync(source))
	finished = sync(make_source("no conflict"))
	for action, (_source, job) in jobs.items():
		result = bulk_action(action, json.dumps([job.name, finished.name]))
		assert result["done"] == [job.name] and list(result["failed"]) == [finished.name]
	frappe.db.commit()
	run_queued()
	assert target_of(jobs["take_source"][0]).qty == 1
	assert target_of(jobs["keep_target"][0]).qty == 5
	for _source, job in jobs.values():
		assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"


def test_resolve_checks_status_decisions_and_permission():
	source = hand_edited("Stop for Review")
	job = sync(source)
	with pytest.raises(SyncJobError, match="Choose source or target for qty"):
		job.resolve(decisions="{}")
	with pytest.raises(SyncJobError, match="No open conflict on title"):
		job.resolve(decisions={"qty": "source", "title": "source"})
	with pytest.raises(SyncJobError, match="must be source or target"):
		job.resolve(decisions={"qty": "both"})
	with as_user("conflict-reader@example.com", ["Sync Tester"]), pytest.raises(frappe.PermissionError):
		frappe.get_doc("Sync Job", job.name).resolve(decisions={"qty": "source"})
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Conflict"
	finished = sync(make_source("done"))
	with pytest.raises(SyncJobTransitionError):
		finished.resolve(decisions={})


def test_a_conflict_job_does_not_hold_its_line():
	source = hand_edited("Stop for Review")
	first = sync(source)
	edit_source(source, title="third")
	second = sync(source)  # runs although the first waits for a person, and stops on the same edit
	assert (first.status, second.status) == ("Conflict", "Conflict")
	assert conflicts_of(second) == [("qty", 1, 5, 1, None)]
	first.cancel_sync("superseded")
	second.resolve(decisions={"qty": "target"})
	frappe.db.commit()
	run_queued()
	assert frappe.db.get_value("Sync Job", first.name, "status") == "Canceled"
	assert (target_of(source).title, target_of(source).qty) == ("third", 5)


def test_a_renamed_target_keeps_its_last_synced_state(host):
	if not host.real:
		pytest.skip("the stand-in has no frappe.rename_doc")
	source = hand_edited("Overwrite")
	old = target_of(source).name
	new = frappe.rename_doc("Sync Test Target", old, "renamed-" + old, force=True)
	frappe.db.commit()
	[link] = frappe.get_all("Sync Link", filters={"source_document_name": source.name}, fields=["*"])
	assert link.target_document_name == new
	assert link.name == sync_link.link_name(TYPE, "Sync Test Source", source.name, "Sync Test Target", new)
	job = sync(source)
	assert (job.status, job.target_document_name, conflicts_of(job)) == (
		"Finished",
		new,
		[("qty", 1, 5, 1, "source")],
	)
