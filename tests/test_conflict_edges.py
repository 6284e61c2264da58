"""Conflict edges: child rows the sync would remove (edited or added on the target), decisions that
the source has moved past, kept edits under a changed policy, and which requests are echoes."""

import json

import frappe
import pytest
from sync_tweaks_tests import two_way

from sync_tweaks.utils.sync_job import enqueue_sync_job, enqueue_sync_jobs
from tests.test_conflicts import conflicts_of, edit_source, hand_edited, sync, target_of
from tests.utils import make_source, run_queued, set_type

TYPE = "Test Single Sync"
FANOUT = "Conflict Edges Target Fanout"


def rows_of(source) -> dict:
	return {row.item_code: row.qty for row in target_of(source).items}


def row_edited_then_removed(policy: str, title: str):
	"""Rows a and b synced; a person sets b's qty to 9 on the target; the source then drops b."""
	set_type(TYPE, on_conflict=policy)
	source = make_source(title, items=[("a", 1), ("b", 2)])
	sync(source)
	target = target_of(source)
	next(row for row in target.items if row.item_code == "b").qty = 9
	target.save(ignore_permissions=True)
	frappe.db.commit()
	source.reload()
	source.items = [row for row in source.items if row.item_code != "b"]
	source.save(ignore_permissions=True)
	frappe.db.commit()
	return source


def row_added_on_target(policy: str, title: str):
	"""Row a synced; a person adds a row on the target; the source's title changes."""
	set_type(TYPE, on_conflict=policy)
	source = make_source(title, items=[("a", 1)])
	sync(source)
	target = target_of(source)
	target.append("items", {"item_code": "hand", "qty": 3})
	target.save(ignore_permissions=True)
	frappe.db.commit()
	edit_source(source, title=title + " 2")
	return source


def row_conflicts(job) -> list[tuple]:
	"""(field, synced qty, now qty, wants, choice) of the job's whole-row conflicts."""
	return [
		(
			c["path"].rsplit(":", 1)[1],
			(c["synced"] or {}).get("qty"),
			c["now"]["qty"],
			c["wants"],
			c["choice"],
		)
		for c in job.get_conflicts()
		if c["path"].endswith(":*")
	]


def test_a_row_edited_on_the_target_and_removed_by_the_sync_stops_for_review():
	source = row_edited_then_removed("Stop for Review", "rows-removed-stop")
	job = sync(source)
	assert job.status == "Conflict", (job.status, conflicts_of(job))
	assert row_conflicts(job) == [("*", 2, 9, None, None)]
	assert rows_of(source) == {"a": 1, "b": 9}  # nothing written
	job.resolve(decisions=json.dumps({job.get_conflicts()[0]["path"]: "source"}))
	frappe.db.commit()
	run_queued()
	job.reload()
	assert job.status == "Finished"
	assert rows_of(source) == {"a": 1}  # the person chose the source: the row goes


def test_a_row_edited_on_the_target_and_removed_under_overwrite_is_recorded_and_removed():
	source = row_edited_then_removed("Overwrite", "rows-removed-overwrite")
	job = sync(source)
	assert (job.status, row_conflicts(job)) == ("Finished", [("*", 2, 9, None, "source")])
	assert rows_of(source) == {"a": 1}


def test_a_row_edited_on_the_target_is_kept_under_keep_target_edits_and_stays_kept():
	source = row_edited_then_removed("Keep Target Edits", "rows-removed-keep")
	job = sync(source)
	# the only change was the removal, and it is kept: nothing to write
	assert (job.status, row_conflicts(job)) == ("Skipped", [("*", 2, 9, None, "target")])
	assert rows_of(source) == {"a": 1, "b": 9}
	edit_source(source, title="rows-removed-keep 2")
	again = sync(source)
	assert (again.status, again.conflict_count) == ("Finished", 0)  # kept without asking again
	assert rows_of(source) == {"a": 1, "b": 9}
	assert target_of(source).title == "rows-removed-keep 2"
	set_type(TYPE, on_conflict="Stop for Review")  # another policy: the kept row is asked about
	edit_source(source, title="rows-removed-keep 3")
	stopped = sync(source)
	assert (stopped.status, row_conflicts(stopped)) == ("Conflict", [("*", 2, 9, None, None)])


def test_an_untouched_row_the_source_dropped_is_removed_without_a_conflict():
	set_type(TYPE, on_conflict="Stop for Review")
	source = make_source("rows-untouched", items=[("a", 1), ("b", 2)])
	sync(source)
	source.reload()
	source.items = [row for row in source.items if row.item_code != "b"]
	source.save(ignore_permissions=True)
	frappe.db.commit()
	job = sync(source)
	assert (job.status, job.conflict_count, rows_of(source)) == ("Finished", 0, {"a": 1})


def test_a_row_added_on_the_target_stops_for_review():
	source = row_added_on_target("Stop for Review", "rows-added-stop")
	job = sync(source)
	assert (job.status, row_conflicts(job)) == ("Conflict", [("*", None, 3, None, None)])
	assert rows_of(source) == {"a": 1, "hand": 3}
	assert target_of(source).title == "rows-added-stop"  # nothing written
	job.resolve(decisions="target")
	frappe.db.commit()
	run_queued()
	job.reload()
	assert job.status == "Finished"
	assert rows_of(source) == {"a": 1, "hand": 3}
	assert target_of(source).title == "rows-added-stop 2"


def test_a_row_added_on_the_target_is_kept_under_keep_target_edits_and_removed_under_overwrite():
	source = row_added_on_target("Keep Target Edits", "rows-added-keep")
	job = sync(source)
	assert (job.status, row_conflicts(job)) == ("Finished", [("*", None, 3, None, "target")])
	assert rows_of(source) == {"a": 1, "hand": 3}
	edit_source(source, title="rows-added-keep 3")
	assert sync(source).conflict_count == 0  # still kept, not asked again
	assert rows_of(source) == {"a": 1, "hand": 3}
	set_type(TYPE, on_conflict="Overwrite")  # the source wins now: the row goes, recorded
	edit_source(source, title="rows-added-keep 4")
	job = sync(source)
	assert (job.status, row_conflicts(job)) == ("Finished", [("*", None, 3, None, "source")])
	assert rows_of(source) == {"a": 1}


def test_a_keep_target_decision_does_not_cover_a_new_source_value():
	"""Kept 5 against the source's 1; the source moves to 2 before the job reruns: asked again."""
	source = hand_edited("Stop for Review")
	job = sync(source)
	assert conflicts_of(job) == [("qty", 1, 5, 1, None)]
	job.resolve(decisions=json.dumps({"qty": "target"}))
	frappe.db.commit()
	edit_source(source, qty=2)
	run_queued()
	job.reload()
	assert job.status == "Conflict", (job.status, conflicts_of(job), target_of(source).qty)
	assert conflicts_of(job) == [("qty", 1, 5, 2, None)]
	assert target_of(source).qty == 5


def test_a_take_source_decision_does_not_write_a_value_the_person_did_not_see():
	source = hand_edited("Stop for Review")
	job = sync(source)
	job.resolve(decisions=json.dumps({"qty": "source"}))
	frappe.db.commit()
	edit_source(source, qty=3)
	run_queued()
	job.reload()
	assert (job.status, conflicts_of(job), target_of(source).qty) == ("Conflict", [("qty", 1, 5, 3, None)], 5)


def test_a_kept_edit_is_overwritten_after_switching_to_overwrite():
	source = hand_edited("Keep Target Edits")
	assert sync(source).conflict_count == 1
	assert target_of(source).qty == 5
	set_type(TYPE, on_conflict="Overwrite")
	edit_source(source, title="after switch")
	job = sync(source)
	assert (job.status, target_of(source).qty) == ("Finished", 1), conflicts_of(job)
	assert conflicts_of(job) == [("qty", 1, 5, 1, "source")]


def test_a_kept_edit_is_asked_about_after_switching_to_stop_for_review():
	source = hand_edited("Keep Target Edits")
	assert sync(source).conflict_count == 1
	set_type(TYPE, on_conflict="Stop for Review")
	edit_source(source, title="after switch")
	job = sync(source)
	assert (job.status, conflicts_of(job), target_of(source).qty) == ("Conflict", [("qty", 1, 5, 1, None)], 5)


# --- echoes ----------------------------------------------------------------------------------------


@pytest.fixture
def fanout_type():
	"""A second type whose source is Sync Test Target and whose target type is left to its
	controller (target_document_type is optional on Sync Job Type)."""
	two_way.ensure_types()
	if not frappe.db.exists("Sync Job Type", FANOUT):
		frappe.get_doc(
			{
				"doctype": "Sync Job Type",
				"sync_job_type_name": FANOUT,
				"module": "Sync Tweaks Tests",
				"is_standard": "No",
				"source_document_type": "Sync Test Target",
				"controller": "sync_tweaks_tests.two_way.back",
				"coalesce_duplicates": 0,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
	yield
	frappe.db.rollback()
	frappe.db.delete("Sync Job", {"sync_job_type": FANOUT})
	frappe.db.delete("Sync Job", {"sync_job_type": ["in", list(two_way.TYPES)]})
	frappe.db.delete("Sync Link", {"sync_job_type": ["in", [FANOUT, *two_way.TYPES]]})
	frappe.db.delete("Sync Job Type", FANOUT)
	frappe.db.commit()


def hook_jobs(job_type):
	frappe.db.rollback()
	return frappe.get_all("Sync Job", filters={"sync_job_type": job_type}, pluck="name")


def test_a_job_of_another_type_enqueued_by_the_targets_hook_is_no_echo(fanout_type, monkeypatch):
	def target_hook(doc, method=None):
		if doc.doctype == "Sync Test Target":
			enqueue_sync_job(FANOUT, source_doc=doc, trigger_type="Document Hook", triggered_by_doc=doc)

	monkeypatch.setattr(two_way, "on_update", target_hook)
	source = make_source("plain fanout", qty=1)
	enqueue_sync_job(two_way.FORWARD, source_doc=source, queue_on_insert=True)
	frappe.db.commit()
	run_queued(max_rounds=1)
	assert frappe.db.exists("Sync Test Target", {"source": source.name})
	assert len(hook_jobs(FANOUT)) == 1, "the hook's job of another type was dropped as an echo"


def test_bulk_enqueue_of_the_reverse_job_is_echo_checked_per_row(fanout_type, monkeypatch):
	def target_hook(doc, method=None):
		if doc.doctype == "Sync Test Target":
			frappe.flags.bulk_names = enqueue_sync_jobs(two_way.BACK, [doc])
			frappe.flags.fanout_names = enqueue_sync_jobs(FANOUT, [doc])

	monkeypatch.setattr(two_way, "on_update", target_hook)
	source = make_source("plain bulk echo", qty=1)
	enqueue_sync_job(two_way.FORWARD, source_doc=source, queue_on_insert=True)
	frappe.db.commit()
	run_queued(max_rounds=1)
	assert frappe.db.exists("Sync Test Target", {"source": source.name})
	assert frappe.flags.bulk_names == []
	assert hook_jobs(two_way.BACK) == [], "bulk enqueue created the echo job"
	assert hook_jobs(FANOUT) == frappe.flags.fanout_names and len(frappe.flags.fanout_names) == 1
