"""Execution: shapes, hook order, flags, dry runs, diffs, failures, retries and user actions."""

import json
import time
from datetime import timedelta

import frappe
import pytest
from frappe.utils import now_datetime
from frappe.utils.background_jobs import get_job
from sync_tweaks_tests.recorder import events

from sync_tweaks.exceptions import SyncJobTransitionError
from sync_tweaks.queue import maintenance as scheduler
from sync_tweaks.queue import worker as runner
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job
from tests.utils import make_source, run_queued, set_type


def run(type_name="Test Single Sync", **params):
	"""Enqueue one job, commit, and run it (and any children) in this process."""
	job = enqueue_sync_job(type_name, **params)
	frappe.db.commit()
	run_queued()
	return frappe.get_doc("Sync Job", job.name)


def hook_order(job):
	return [e["event"] for e in events(job.name)]


def target_of(source):
	name = frappe.db.get_value("Sync Test Target", {"source": source.name})
	return frappe.get_doc("Sync Test Target", name) if name else None


def test_single_target_insert_with_hooks_in_order_and_timing():
	source = make_source(qty=3, items=[("A", 1)])
	job = run(source_doc=source)
	assert job.status == "Finished", job.error_message
	assert hook_order(job) == [
		"after_start",
		"get_target_document",
		"update_target_doc",
		"before_sync",
		"after_sync",
		"finished",
	]
	target = target_of(source)
	assert (target.title, target.qty, [r.item_code for r in target.items]) == (source.title, 3, ["A"])
	assert (job.operation, job.target_document_name) == ("Insert", target.name)
	assert job.started_at and job.ended_at and job.time_taken is not None and job.job_id
	diff = json.loads(job.diff_summary)
	assert ["title", None, source.title] in diff["changed"] and diff["added"][0][0] == "items"
	assert not job.current_data and not job.updated_data  # no verbose logging


def test_update_diff_in_version_format_and_snapshots_with_verbose_logging():
	source = make_source(qty=1, items=[("A", 1), ("B", 1)])
	run(source_doc=source)
	set_type("Test Single Sync", verbose_logging=1)
	source.qty = 7
	source.items[0].qty = 5
	source.remove(source.items[1])
	source.append("items", {"item_code": "C", "qty": 2})
	source.save(ignore_permissions=True)
	frappe.db.commit()
	job = run(source_doc=source)
	assert (job.status, job.operation) == ("Finished", "Update"), job.error_message
	diff = json.loads(job.diff_summary)
	assert diff["changed"] == [["qty", 1, 7]]
	assert [row[3] for row in diff["row_changed"]] == [[["qty", 1, 5]]]
	assert [row[1]["item_code"] for row in diff["added"]] == ["C"]
	assert [row[1]["item_code"] for row in diff["removed"]] == ["B"]
	assert json.loads(job.current_data)["fields"]["qty"] == 1
	assert json.loads(job.updated_data)["fields"]["qty"] == 7


def test_update_without_changes_is_skipped_unless_forced():
	source = make_source()
	run(source_doc=source)
	again = run(source_doc=source)
	assert (again.status, again.error_message) == ("Skipped", "No changes")
	forced = run(source_doc=source, update_without_changes_enabled=True)
	assert forced.status == "Finished"


@pytest.mark.parametrize("flag,operation", [("insert_enabled", "Insert"), ("update_enabled", "Update")])
def test_disabled_operations_are_skipped_and_finished_still_runs(flag, operation):
	source = make_source()
	if operation == "Update":
		run(source_doc=source)
	job = run(source_doc=source, **{flag: False})
	assert job.status == "Skipped" and operation in job.error_message
	assert "finished" in hook_order(job) and "before_sync" not in hook_order(job)


def test_deleted_source_loads_from_deleted_documents_and_deletes_the_target():
	source = make_source()
	run(source_doc=source)
	target = target_of(source)
	frappe.delete_doc("Sync Test Source", source.name, ignore_permissions=True)
	frappe.db.commit()
	job = run(source_document_type="Sync Test Source", source_document_name=source.name)
	assert (job.status, job.operation) == ("Finished", "Delete"), job.error_message
	assert not frappe.db.exists("Sync Test Target", target.name)
	assert json.loads(job.diff_summary)["changed"][0][2] is None


def test_delete_of_a_missing_target_ends_no_target():
	source = make_source()
	job = run(source_doc=source, operation="Delete", target_document_name="missing-target")
	assert job.status == "No Target"


def test_update_of_a_missing_target_fails():
	source = make_source()
	job = run(source_doc=source, operation="Update", target_document_name="missing-target", max_retries=0)
	assert job.status == "Failed" and "missing-target" in job.error_message


def test_preset_insert_skips_discovery():
	source = make_source()
	job = run(source_doc=source, operation="insert")
	assert job.status == "Finished"
	assert "get_target_document" not in hook_order(job)


def test_dry_run_writes_nothing_even_for_careless_controllers_but_keeps_the_diff():
	source = make_source(qty=4)
	before = frappe.db.count("Sync Test Target")
	job = run(source_doc=source, dry_run=True, context={"careless_write": True})
	assert (job.status, job.error_message) == ("Skipped", "Dry run")
	assert frappe.db.count("Sync Test Target") == before
	assert ["qty", None, 4] in json.loads(job.diff_summary)["changed"]
	assert "before_sync" not in hook_order(job) and "finished" in hook_order(job)


def test_a_controller_that_commits_fails_and_leaves_nothing():
	source = make_source()
	job = run(
		source_doc=source,
		dry_run=True,
		context={"careless_write": True, "careless_commit": True},
		max_retries=0,
	)
	assert job.status == "Failed" and "must not commit" in job.error_message
	assert frappe.db.count("Sync Test Target") == 0


def test_dry_run_delete_reports_the_document_that_would_be_deleted():
	source = make_source(qty=2)
	run(source_doc=source)
	target = target_of(source)
	job = run(source_doc=source, operation="Delete", target_document_name=target.name, dry_run=True)
	assert job.status == "Skipped", job.error_message
	assert ["qty", 2, None] in json.loads(job.diff_summary)["changed"]
	assert frappe.db.exists("Sync Test Target", target.name)


def test_multiple_targets_relay_to_child_jobs_inheriting_flags():
	source = make_source(items=[("A", 1), ("B", 2), ("C", 3)])
	parent = run("Test Multi Sync", source_doc=source, update_without_changes_enabled=True)
	assert parent.status == "Relayed", parent.error_message
	assert hook_order(parent) == [
		"after_start",
		"get_multiple_target_documents",
		"before_relay",
		"after_relay",
		"finished",
		"on_children_done",  # once the children ran
	]
	children = json.loads(parent.multiple_target_documents)
	assert len(children) == 3
	for child in children:
		doc = frappe.get_doc("Sync Job", child["sync_job"])
		assert (doc.parent_sync_job, doc.status, doc.update_without_changes_enabled) == (
			parent.name,
			"Finished",
			1,
		)
	titles = sorted(frappe.get_all("Sync Test Target", pluck="title"))
	assert titles == [f"{source.title}/{code}" for code in "ABC"]


def test_before_relay_may_edit_targets_and_one_target_runs_in_the_same_job():
	source = make_source(items=[("A", 1), ("B", 2)])
	job = run("Test Multi Sync", source_doc=source, context={"drop_first_target": True})
	assert job.status == "Finished", job.error_message
	assert frappe.get_all("Sync Test Target", pluck="title") == [f"{source.title}/B"]


def test_no_targets_ends_no_target():
	job = run("Test Multi Sync", source_doc=make_source(items=[]))
	assert job.status == "No Target"


def test_dry_run_relay_creates_dry_run_children_and_rolls_back_hook_writes():
	source = make_source(items=[("A", 1), ("B", 2)])
	parent = run(
		"Test Multi Sync",
		source_doc=source,
		dry_run=True,
		context={"write_in_after_relay": True, "enqueue_in_after_relay": True},
	)
	assert parent.status == "Relayed"
	children = [
		frappe.get_doc("Sync Job", c["sync_job"]) for c in json.loads(parent.multiple_target_documents)
	]
	assert all(child.dry_run and child.status == "Skipped" for child in children)
	assert frappe.db.count("Sync Test Target") == 0
	assert get_job("after-relay-" + parent.name) is None, "nothing a dry-run hook enqueues is pushed"


def test_bypass_controller():
	source = make_source()
	job = run("Test Bypass Sync", source_doc=source)
	assert job.status == "Finished" and hook_order(job) == ["execute", "finished"]
	assert job.target_document_name and frappe.db.exists("Sync Test Target", job.target_document_name)
	context_only = run("Test Bypass Sync", context={"title": "from context"})
	assert context_only.status == "Finished"


def test_malformed_controller_fails_without_retry():
	job = run("Test Broken Sync", source_doc=make_source())
	assert job.status == "Failed" and "not a valid sync controller" in job.error_message
	assert not job.retry_after


def test_fatal_error_fails_without_retry():
	job = run(source_doc=make_source(), context={"fail": "fatal"})
	assert (job.status, job.error_message, job.retry_after) == ("Failed", "cannot be fixed by retrying", None)


def test_failure_rolls_back_target_writes_and_schedules_a_retry():
	source = make_source()
	set_type("Test Single Sync", retry_delay=5)
	job = run(source_doc=source, context={"fail": "error", "careless_write": True})
	assert job.status == "Failed" and "ValueError: boom" in job.error_message
	assert frappe.db.count("Sync Test Target") == 0
	delay = (job.retry_after - now_datetime()).total_seconds()
	assert 4 * 60 < delay <= 5 * 60


def test_scheduler_retries_due_failures_until_success():
	source = make_source()
	job = run(source_doc=source, context={"fail": "until_retry", "fail_times": 2})
	assert job.status == "Failed"
	for attempt in (1, 2):
		scheduler.run_maintenance()
		assert frappe.db.get_value("Sync Job", job.name, ["status", "retry_count"]) == ("Queued", attempt)
		run_queued()
	job.reload()
	assert (job.status, job.retry_count) == ("Finished", 2)


def test_max_retries_zero_never_retries():
	job = run(source_doc=make_source(), context={"fail": "error"}, max_retries=0)
	assert job.status == "Failed" and not job.retry_after
	assert scheduler.retry_due() == []


def test_retry_waits_until_it_is_due():
	job = run(source_doc=make_source(), context={"fail": "error"})
	assert job.due_at and job.retry_after, "due (epoch, compared) and retry after (site time, shown)"
	frappe.db.set_value("Sync Job", job.name, "due_at", time.time() + 120)
	assert job.name not in scheduler.retry_due()
	frappe.db.set_value("Sync Job", job.name, "due_at", time.time() - 1)
	assert job.name in scheduler.retry_due()


def test_start_cancel_retry_and_dry_run_again():
	source = make_source()
	pending = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	pending.start()
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", pending.name, "status") == "Queued"
	pending.reload()
	delivery = pending.job_id
	pending.cancel_sync("not needed")
	frappe.db.commit()
	assert runner.run_batch([pending.name], delivery) == [None], (
		"a canceled job never runs, even when its RQ job was queued"
	)
	pending.reload()
	assert (pending.status, pending.cancel_reason) == ("Canceled", "not needed")
	with pytest.raises(SyncJobTransitionError):
		pending.retry()

	failed = run(source_doc=make_source(), context={"fail": "error"})
	failed.retry()
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", failed.name, "status") in ("Waiting", "Queued")

	done = run(source_doc=make_source())
	dry = frappe.get_doc("Sync Job", done.dry_run_again())
	frappe.db.commit()
	run_queued()
	dry.reload()
	assert dry.dry_run and dry.status == "Skipped"


def test_a_second_delivery_of_the_same_job_is_a_no_op():
	job = enqueue_sync_job("Test Single Sync", source_doc=make_source())
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", job.name, "job_id")
	assert runner.run_batch([job.name], delivery) == ["Finished"]
	assert runner.run_batch([job.name], delivery) == [None]
	assert len([e for e in events(job.name) if e["event"] == "after_start"]) == 1
