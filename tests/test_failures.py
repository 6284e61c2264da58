"""Failures grouped by cause: the signature, the groups (report, CLI) and Retry all / Cancel all."""

import frappe
import pytest
from click.testing import CliRunner

from sync_tweaks import failures
from sync_tweaks.commands import sync_job
from sync_tweaks.engine.signature import controller_frame, error_signature, normalise_message
from sync_tweaks.sync_tweaks.report.sync_job_failures.sync_job_failures import execute
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.test_security import as_user, call
from tests.utils import make_source, run_queued, set_type, statuses

GROUP_ACTION = "sync_tweaks.failures.group_action"


def test_messages_differing_only_in_ids_and_numbers_share_a_signature():
	a = error_signature(
		"ValueError", "Customer CUST-00042 not found (HTTP 404) after 3 tries", "app.sync.push"
	)
	b = error_signature(
		"ValueError", "Customer CUST-00077 not found (HTTP 404) after 5 tries", "app.sync.push"
	)
	assert a == b
	assert a[1] == "ValueError: Customer <name> not found (HTTP <n>) after <n> tries (at app.sync.push)"
	assert (
		error_signature("KeyError", "Customer CUST-00042 not found (HTTP 404) after 3 tries", "app.sync.push")
		!= a
	)
	assert (
		error_signature("ValueError", "Customer CUST-1 not found (HTTP 404) after 3 tries", "app.other.push")
		!= a
	)
	assert (
		normalise_message("job 3f2a9c1be0d4 failed: 'Acme Ltd' rejected") == "job <id> failed: <str> rejected"
	)
	assert normalise_message("Traceback line one\nsecond line") == "Traceback line one"
	assert (
		controller_frame(
			[("frappe.app", "run"), ("myapp.sync", "push"), ("sync_tweaks.apply", "run")],
			("frappe.", "sync_tweaks."),
		)
		== "myapp.sync.push"
	)


def fail(message: str, job_type: str = "Test Single Sync"):
	return enqueue_sync_job(job_type, source_doc=make_source(), context={"fail_with": message}).name


@pytest.fixture
def failed_groups():
	set_type("Test Single Sync", max_retries=0)
	set_type("Test Bypass Sync", max_retries=0)
	missing = [fail(f"Customer CUST-{n:05} not found") for n in (42, 77, 1234)]
	down = [fail("connection refused by 10.0.0.7:443")]
	frappe.db.commit()
	run_queued()
	assert set(statuses(missing + down).values()) == {"Failed"}
	return missing, down


def test_failed_jobs_group_by_cause_with_counts_types_and_retries_left(failed_groups):
	missing, down = failed_groups
	rows = {row.cause: row for row in failures.groups()}
	group = next(row for cause, row in rows.items() if "Customer <name> not found" in cause)
	assert group.count == 3 and group.no_retries_left == 3 and group.retrying == 0
	assert group.types == ["Test Single Sync"] and group.first_seen <= group.last_seen
	assert "(at sync_tweaks_tests.recorder.behave)" in group.cause
	assert sum(1 for cause in rows if "connection refused" in cause) == 1
	assert {frappe.db.get_value("Sync Job", name, "error_signature") for name in missing} == {group.signature}
	columns, report_rows = execute({"sync_job_type": "Test Single Sync"})
	assert [c["fieldname"] for c in columns][:3] == ["cause", "count", "no_retries_left"]
	assert {r["signature"] for r in report_rows} == {row.signature for row in rows.values()}


def test_retry_all_and_cancel_all_of_a_group_are_permission_checked(failed_groups):
	missing, down = failed_groups
	signature = frappe.db.get_value("Sync Job", missing[0], "error_signature")
	with as_user("failures-nobody@example.com", []):
		with pytest.raises(frappe.PermissionError):
			call(GROUP_ACTION, action="retry", signature=signature)
	assert set(statuses(missing).values()) == {"Failed"}

	result = call(GROUP_ACTION, action="retry", signature=signature)
	frappe.db.commit()
	assert sorted(result["done"]) == sorted(missing) and not result["failed"]
	assert set(statuses(missing).values()) <= {"Waiting", "Queued"} and statuses(down) == {down[0]: "Failed"}

	down_signature = frappe.db.get_value("Sync Job", down[0], "error_signature")
	call(GROUP_ACTION, action="cancel", signature=down_signature)
	frappe.db.commit()
	assert statuses(down) == {down[0]: "Canceled"}
	with pytest.raises(frappe.ValidationError):
		call(GROUP_ACTION, action="delete", signature=signature)


def test_cli_failures_prints_the_groups(host, failed_groups):
	obj = {"sites": [host.site], "force": False, "verbose": False, "profile": False}
	result = CliRunner().invoke(sync_job, ["failures", "--type", "Test Single Sync"], obj=obj)
	frappe.db.rollback()
	assert result.exit_code == 0, result.output
	lines = result.output.splitlines()
	assert lines[0].split()[0] == "3" and "Customer <name> not found" in lines[0]
	assert "NO RETRIES LEFT" in lines[1] and "Test Single Sync" in lines[1]
	assert any("connection refused by <n>" in line for line in lines)
	signature = frappe.db.get_value("Sync Job", failed_groups[0][0], "error_signature")
	retried = CliRunner().invoke(sync_job, ["retry", "--failed", "--signature", signature], obj=obj)
	frappe.db.rollback()
	assert "Retried 3 Sync Job(s)" in retried.output
