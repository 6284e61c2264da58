"""Fan-out completion: on_children_done runs exactly once when every child is done, also when two
workers end the last two children at once; the parent shows its children's progress."""

import frappe
from sync_tweaks_tests.recorder import events

from sync_tweaks.queue import fanout
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import make_source, run_queued, set_type, statuses, wait_for, wait_for_status

TYPE = "Test Multi Sync"


def relay(items, **context):
	source = make_source(items=items)
	return enqueue_sync_job(TYPE, source_doc=source, context=context or None).name


def children_of(parent):
	frappe.db.rollback()
	return frappe.get_all("Sync Job", filters={"parent_sync_job": parent}, pluck="name")


def test_hook_runs_once_when_two_workers_end_the_last_children_together(workers):
	"""Two children per parent, no concurrency key, one second each: two workers run them in
	parallel, so both end (and both check the parent) at about the same moment. Three parents."""
	set_type(TYPE, concurrency="None")
	workers(2)
	gaps = []
	for _ in range(3):
		parent = relay([("a", 1), ("b", 1)], sleep=1)
		frappe.db.commit()
		wait_for_status([parent], timeout=60)
		kids = children_of(parent)
		assert len(kids) == 2
		assert set(wait_for_status(kids, timeout=60).values()) == {"Finished"}
		wait_for(lambda p=parent: frappe.db.get_value("Sync Job", p, "children_done_at"), 30, message="done")
		calls = events(parent, "on_children_done")
		assert len(calls) == 1, calls
		assert set(calls[0]["children"].values()) == {"Finished"} and len(calls[0]["children"]) == 2
		ends = sorted(frappe.db.get_value("Sync Job", k, "ended_at") for k in kids)
		gaps.append((ends[1] - ends[0]).total_seconds())
	print(f"\nthe two children of each parent ended {', '.join(f'{g:.3f}' for g in gaps)} s apart")
	assert min(gaps) < 0.5, "the children ran in parallel: their ends (and completion checks) crossed"


def test_failed_children_without_retries_count_as_done_and_progress_says_so():
	set_type(TYPE, max_retries=0, concurrency="None")
	parent = relay([("a", 1), ("b", 1), ("c", 1)], fail_child="b")
	frappe.db.commit()
	run_queued()
	assert statuses([parent]) == {parent: "Relayed"}
	run_queued()
	progress = fanout.progress(parent)
	assert progress["total"] == 3 and progress["done"] == 3 and progress["failed"] == 1
	[call] = events(parent, "on_children_done")
	assert sorted(call["children"].values()) == ["Failed", "Finished", "Finished"]
	assert frappe.db.get_value("Sync Job", parent, "children_done_at")


def test_a_child_waiting_for_its_retry_is_not_done():
	set_type(TYPE, max_retries=1, retry_delay=10, concurrency="None")
	parent = relay([("a", 1), ("b", 1)], fail_child="b")
	frappe.db.commit()
	run_queued()
	run_queued()
	progress = fanout.progress(parent)
	assert progress == {**progress, "total": 2, "done": 1, "retrying": 1, "failed": 0}
	assert events(parent, "on_children_done") == []
	[retrying] = [child for child, status in statuses(children_of(parent)).items() if status == "Failed"]
	frappe.get_doc("Sync Job", retrying).cancel_sync("give up")
	frappe.db.commit()
	assert len(events(parent, "on_children_done")) == 1, "canceling the last open child completes the parent"


def test_completion_is_decided_once_and_its_writes_commit_with_it():
	set_type(TYPE, concurrency="None")
	parent = relay([("a", 1), ("b", 1)], write_children_done=1)
	frappe.db.commit()
	run_queued()
	run_queued()
	assert len(events(parent, "on_children_done")) == 1
	assert fanout.complete(parent) is False and fanout.complete(parent) is False
	assert len(events(parent, "on_children_done")) == 1
	assert frappe.db.exists("Sync Test Target", {"title": "children done " + parent})


def test_a_failing_hook_is_logged_and_not_run_again():
	set_type(TYPE, concurrency="None")
	parent = relay([("a", 1), ("b", 1)], fail_children_done=1)
	frappe.db.commit()
	run_queued()
	run_queued()
	job = frappe.get_doc("Sync Job", parent)
	assert job.status == "Relayed" and job.children_done_at and "on_children_done failed" in job.error_message
	assert fanout.complete(parent) is False and len(events(parent, "on_children_done")) == 1


def _children(parent):
	frappe.db.rollback()
	return frappe.get_all(
		"Sync Job", filters={"parent_sync_job": parent}, pluck="name", order_by="creation asc"
	)


def test_a_child_in_conflict_is_not_done_so_on_children_done_waits():
	"""on_children_done runs once every child reached a final status: a child in Conflict waits for a
	person and runs again once resolved, so it is not done (nor counted done on the parent's form)."""
	set_type("Test Multi Sync", concurrency="None")
	parent = enqueue_sync_job("Test Multi Sync", source_doc=make_source(items=[("a", 1), ("b", 1)])).name
	frappe.db.commit()
	run_queued(max_rounds=1)
	assert statuses([parent]) == {parent: "Relayed"}
	first, second = _children(parent)
	frappe.db.set_value("Sync Job", first, {"status": "Conflict", "job_id": None}, update_modified=False)
	frappe.db.set_value("Sync Job", second, {"status": "Finished", "job_id": None}, update_modified=False)
	frappe.db.commit()
	assert fanout.complete(parent) is False, "on_children_done ran while a child awaits review"
	assert fanout.progress(parent)["done"] == 1, "the Conflict child awaits review: not done"
	assert not frappe.db.get_value("Sync Job", parent, "children_done_at")


def test_deleting_the_last_open_child_completes_the_parent():
	"""Deleting the last open child of a relayed parent completes the parent."""
	set_type("Test Multi Sync", concurrency="None")
	parent = enqueue_sync_job("Test Multi Sync", source_doc=make_source(items=[("a", 1), ("b", 1)])).name
	frappe.db.commit()
	run_queued(max_rounds=1)
	first, second = _children(parent)
	frappe.db.set_value("Sync Job", first, {"status": "Finished", "job_id": None}, update_modified=False)
	frappe.db.commit()
	try:
		frappe.delete_doc("Sync Job", second, force=True)
		frappe.db.commit()
	except (frappe.ValidationError, frappe.LinkExistsError) as e:
		frappe.db.rollback()
		print(f"\ndeleting an open child is refused: {e}")
		return
	assert frappe.db.get_value("Sync Job", parent, "children_done_at"), "the parent never completes"


def test_a_completion_check_that_hits_a_transient_error_is_tried_again_by_maintenance(monkeypatch):
	"""A completion check that failed (a lock wait) is tried again by the minute's maintenance."""
	from sync_tweaks.queue import maintenance

	set_type("Test Multi Sync", concurrency="None")
	parent = enqueue_sync_job("Test Multi Sync", source_doc=make_source(items=[("a", 1), ("b", 1)])).name
	frappe.db.commit()
	run_queued(max_rounds=1)
	real = fanout.open_children
	failures, failing = [], [1]

	def flaky(parent_name, lock=False):
		if lock and failing:
			failures.append(1)
			raise frappe.QueryTimeoutError("Lock wait timeout exceeded")
		return real(parent_name, lock)

	monkeypatch.setattr(fanout, "open_children", flaky)
	run_queued()
	assert set(statuses(_children(parent)).values()) == {"Finished"}
	assert failures, "the completion check hit the error"
	failing.clear()  # the database is fine again
	maintenance.run_maintenance()
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", parent, "children_done_at"), "on_children_done is lost"
