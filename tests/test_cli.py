"""`bench --site SITE sync-job …` through click's CliRunner: output and exit codes, good and bad input.

The commands run in this process and reuse the test session's connection (see `commands.connected`):
`frappe.init`/`connect`/`destroy` of their own would tear down the session's `frappe.local`.
"""

import json

import frappe
import pytest
from click.testing import CliRunner

from sync_tweaks.commands import diff_lines, sync_job
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job
from tests.utils import make_source, run_queued, set_type


def job_of(source) -> frappe._dict:
	return frappe.get_all(
		"Sync Job",
		filters={"source_document_name": source.name},
		fields=["name", "status", "dry_run", "context", "trigger_type"],
	)


def test_enqueue_one_source_queues_a_job_and_keeps_the_connection(cli):
	source = make_source()
	result = cli("enqueue", "Test Single Sync", source.name)
	assert result.exit_code == 0, result.output
	[job] = job_of(source)
	assert job.status in ("Waiting", "Queued") and job.trigger_type == "Manual"
	assert "Enqueued 1 Sync Job(s) of Test Single Sync" in result.output and job.name in result.output
	assert frappe.db.exists("Sync Test Source", source.name)  # still connected


def test_enqueue_many_sources_as_dry_runs_with_context(cli):
	sources = [make_source() for _ in range(3)]
	result = cli(
		"enqueue", "Test Single Sync", *[s.name for s in sources], "--dry-run", "--context", '{"a": 1}'
	)
	assert result.exit_code == 0, result.output
	jobs = [job for source in sources for job in job_of(source)]
	assert len(jobs) == 3
	assert all(job.dry_run == 1 and json.loads(job.context) == {"a": 1} for job in jobs)


def test_enqueue_all_makes_one_job_per_source_document(cli):
	make_source()
	result = cli("enqueue", "Test Single Sync", "--all")
	assert result.exit_code == 0, result.output
	expected = frappe.db.count("Sync Test Source")
	assert frappe.db.count("Sync Job", {"sync_job_type": "Test Single Sync"}) == expected
	assert f"Enqueued {expected} Sync Job(s)" in result.output


def test_enqueue_a_context_only_job(cli):
	result = cli("enqueue", "Test Bypass Sync", "--context", '{"note": "x"}')
	assert result.exit_code == 0, result.output
	[context] = frappe.get_all("Sync Job", filters={"sync_job_type": "Test Bypass Sync"}, pluck="context")
	assert json.loads(context) == {"note": "x"}


@pytest.mark.parametrize(
	"args, exit_code, message",
	[
		(["enqueue", "No Such Type", "x"], 1, "Sync Job Type No Such Type does not exist"),
		(["enqueue", "Test Single Sync", "x", "--context", "{not json"], 2, "not valid JSON"),
		(["enqueue", "Test Single Sync", "x", "--context", "[1, 2]"], 2, "must be a JSON object"),
		(["enqueue", "Test Single Sync", "x", "--all"], 2, "not both"),
		(["enqueue", "Test Single Sync"], 2, "Give SOURCE names, --all, or --context"),
		(["enqueue", "Test Single Sync", "missing-source-name"], 1, "Sync Test Source not found"),
		(["run", "no-such-job"], 1, "Sync Job no-such-job does not exist"),
		(["retry"], 2, "Give a Sync Job name or --failed"),
		(["retry", "x", "--failed"], 2, "Give a Sync Job name or --failed"),
		(["retry", "--failed", "--type", "No Such Type"], 1, "does not exist"),
		(["cancel", "no-such-job"], 1, "does not exist"),
		(["doctor", "--type", "No Such Type"], 1, "does not exist"),
	],
)
def test_bad_input_gets_a_clear_message_and_exit_code(cli, args, exit_code, message):
	result = cli(*args)
	assert result.exit_code == exit_code, result.output
	assert message in result.output


def test_disabled_type_refuses_new_jobs(cli):
	source = make_source()
	set_type("Test Single Sync", disabled=1)
	result = cli("enqueue", "Test Single Sync", source.name)
	assert result.exit_code == 1 and "Test Single Sync is disabled" in result.output
	assert not job_of(source)


def test_run_executes_a_pending_job_in_the_foreground_and_prints_the_diff(cli):
	source = make_source(qty=4)
	job = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	frappe.db.commit()
	result = cli("run", job.name)
	assert result.exit_code == 0, result.output
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"
	assert f"{job.name}: Finished" in result.output and "Diff:" in result.output
	assert f'title: null -> "{source.title}"' in result.output and "qty: null -> 4" in result.output


def test_run_reports_a_failure_with_its_error_and_exit_code_1(cli):
	job = create_sync_job("Test Broken Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	result = cli("run", job.name)
	assert result.exit_code == 1
	assert f"{job.name}: Failed" in result.output and "not a valid sync controller" in result.output


def test_run_takes_a_failed_job_again(cli):
	source = make_source()
	job = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	frappe.db.set_value(
		"Sync Job", job.name, {"status": "Failed", "retry_after": frappe.utils.now_datetime()}
	)
	frappe.db.commit()
	result = cli("run", job.name)
	assert result.exit_code == 0, result.output
	assert frappe.db.get_value("Sync Job", job.name, ["status", "retry_after"]) == ("Finished", None)


def test_run_refuses_a_final_job(cli):
	job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.set_value("Sync Job", job.name, "status", "Finished")
	frappe.db.commit()
	result = cli("run", job.name)
	assert result.exit_code == 1 and f"Cannot run Sync Job {job.name}: it is Finished" in result.output


def test_run_refuses_while_another_job_holds_the_slot(cli):
	source = make_source()
	first = enqueue_sync_job("Test Single Sync", source_doc=source)
	frappe.db.commit()  # dispatched: Queued, no worker takes it
	assert frappe.db.get_value("Sync Job", first.name, "status") == "Queued"
	second = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False)
	frappe.db.commit()
	result = cli("run", second.name)
	assert result.exit_code == 1 and f"Sync Job {first.name} holds the concurrency slot" in result.output
	assert frappe.db.get_value("Sync Job", second.name, "status") == "Pending"


def test_retry_one_job_and_all_failed_jobs(cli):
	jobs = [
		create_sync_job("Test Broken Sync", source_doc=make_source(), queue_on_insert=False) for _ in range(3)
	]
	frappe.db.commit()
	for job in jobs:
		frappe.db.set_value("Sync Job", job.name, {"status": "Failed", "error_message": "boom"})
	frappe.db.commit()
	result = cli("retry", jobs[0].name)
	assert result.exit_code == 0 and "Retried 1 Sync Job(s)" in result.output
	assert frappe.db.get_value("Sync Job", jobs[0].name, "status") in ("Waiting", "Queued")
	result = cli("retry", "--failed", "--type", "Test Broken Sync")
	assert result.exit_code == 0 and "Retried 2 Sync Job(s)" in result.output
	assert {frappe.db.get_value("Sync Job", job.name, "status") for job in jobs} <= {"Waiting", "Queued"}


def test_retry_refuses_a_job_that_did_not_fail(cli):
	job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	result = cli("retry", job.name)
	assert result.exit_code == 1
	assert f"Cannot retry Sync Job {job.name}: it is Pending (only Failed)" in result.output


def test_cancel_with_reason_and_refusal_of_a_final_job(cli):
	job = create_sync_job("Test Single Sync", source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	result = cli("cancel", job.name, "--reason", "not needed")
	assert result.exit_code == 0 and f"Canceled Sync Job {job.name}" in result.output
	assert frappe.db.get_value("Sync Job", job.name, ["status", "cancel_reason"]) == (
		"Canceled",
		"not needed",
	)
	result = cli("cancel", job.name)
	assert (
		result.exit_code == 1
		and "it is Canceled (only Pending, Waiting, Queued, Failed, Conflict)" in result.output
	)


def test_stats_counts_per_status_and_type_with_percentiles(cli):
	for _ in range(3):
		enqueue_sync_job("Test Single Sync", source_doc=make_source())
	enqueue_sync_job("Test Broken Sync", source_doc=make_source())
	frappe.db.commit()
	run_queued()
	result = cli("stats")
	assert result.exit_code == 0, result.output
	assert "Test Single Sync: Finished 3" in result.output and "Test Broken Sync: Failed 1" in result.output
	assert "Last hour:" in result.output and "p95" in result.output
	numbers = json.loads(cli("stats", "--json").output)
	assert numbers["by_type"]["Test Single Sync"] == {"Finished": 3}
	assert numbers["ended_by_status"]["Finished"] >= 3 and numbers["ended"] >= 4
	assert 0 <= numbers["p50"] <= numbers["p95"]


def test_diff_lines_cover_every_part_of_the_version_format():
	diff = {
		"changed": [["qty", 1, 2]],
		"added": [["items", {"item_code": "A"}]],
		"removed": [["items", {"item_code": "B"}]],
		"row_changed": [["items", 1, "row1", [["qty", 1, 5]]]],
	}
	assert diff_lines(diff) == [
		"qty: 1 -> 2",
		'+ items: {"item_code": "A"}',
		'- items: {"item_code": "B"}',
		"items #1 qty: 1 -> 5",
	]
	assert diff_lines({}) == ["no changes"]


def test_run_refuses_to_jump_its_line(cli):
	source = make_source()
	older = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False).name
	newer = create_sync_job("Test Single Sync", source_doc=source, queue_on_insert=False).name
	frappe.db.sql(
		"update `tabSync Job` set status='Waiting', next_in_key=0 where name in %s", ((older, newer),)
	)
	frappe.db.commit()
	result = cli("run", newer)
	assert result.exit_code == 1 and f"Sync Job {older} is older and waits before it" in result.output
	assert frappe.db.get_value("Sync Job", newer, "status") == "Waiting"


def test_resolve_reruns_a_conflict_job_with_one_choice_or_per_field(cli):
	from tests.test_conflicts import hand_edited, sync, target_of

	source = hand_edited("Stop for Review")
	job = sync(source)
	assert cli("resolve", job.name).exit_code == 2  # neither --take nor --decisions
	bad = cli("resolve", job.name, "--decisions", '{"title": "source"}')
	assert bad.exit_code == 1 and "No open conflict on title" in bad.output
	result = cli("resolve", job.name, "--take", "target")
	assert result.exit_code == 0, result.output
	run_queued()
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"
	assert target_of(source).qty == 5
	again = cli("resolve", job.name, "--decisions", '{"qty": "source"}')
	assert again.exit_code == 1 and "Cannot resolve" in again.output
