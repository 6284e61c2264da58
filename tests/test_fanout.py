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
	"""Children of a type without concurrency key run in parallel; each sleeps 1 s, so with two
	workers the last two end at about the same moment. Repeated over several parents."""
	set_type(TYPE, concurrency="None")
	parents = [relay([(f"i{n}", 1) for n in range(4)], sleep=1) for _ in range(3)]
	frappe.db.commit()
	workers(2)
	wait_for_status(parents, timeout=60)
	kids = [child for parent in parents for child in children_of(parent)]
	assert len(kids) == 12
	assert set(wait_for_status(kids, timeout=90).values()) == {"Finished"}
	wait_for(
		lambda: all(frappe.db.get_value("Sync Job", p, "children_done_at") for p in parents),
		30,
		message="children_done_at",
	)
	for parent in parents:
		calls = events(parent, "on_children_done")
		assert len(calls) == 1, calls
		assert set(calls[0]["children"].values()) == {"Finished"} and len(calls[0]["children"]) == 4
	ends = sorted(frappe.db.get_value("Sync Job", k, "ended_at") for k in children_of(parents[0]))
	print(f"\nlast two children of a parent ended {(ends[-1] - ends[-2]).total_seconds():.3f} s apart")


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
