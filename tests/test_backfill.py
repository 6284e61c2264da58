"""Backfills: jobs created in chunks, a roll-up that equals the jobs' outcomes, dry runs that write
nothing, apply, cancel and resume."""

import json
import secrets

import frappe
import pytest
from frappe.utils.background_jobs import get_queue

from sync_tweaks.backfill import creation, rollup
from sync_tweaks.engine import rollup as pure
from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import act, new_backfill
from tests.backfills import RUN, TYPE, counts_of, lose_creator, sources, start
from tests.test_security import CREATE_BACKFILL, as_user, call, call_doc_method
from tests.utils import make_source, run_queued, set_type


def mixed_sources(prefix: str) -> dict[str, list[str]]:
	"""Three sources without a target, two whose target matches, one whose target differs, one that
	fails (no retries): what a dry run must tell apart."""
	groups = {
		"insert": sources(prefix + " new", 3),
		"unchanged": sources(prefix + " same", 2, qty=2),
		"update": sources(prefix + " moved", 1, qty=3),
		"fail": sources(prefix + " broken", 1, notes="fail: backfill fixture"),
	}
	for name in groups["unchanged"] + groups["update"]:
		source = frappe.get_doc("Sync Test Source", name)
		frappe.get_doc(
			{"doctype": "Sync Test Target", "source": name, "title": source.title, "qty": 2}
		).insert(ignore_permissions=True)
	frappe.db.set_value("Sync Test Source", groups["update"][0], "qty", 5)
	frappe.db.commit()
	return groups


def run_backfill(name: str):
	"""Create every chunk and run every job in this process, as the creator and workers would."""
	creation.create_jobs_until_done(name)
	run_queued()
	rollup.fold(name)
	return frappe.get_doc("Sync Backfill", name)


def jobs_of(name: str) -> list[dict]:
	frappe.db.rollback()
	return frappe.get_all(
		"Sync Job",
		filters={"sync_backfill": name},
		fields=[
			"name",
			"status",
			"operation",
			"dry_run",
			"conflict_count",
			"diff_summary",
			"source_document_name",
		],
	)


def test_dry_run_backfill_writes_no_target_and_its_rollup_equals_the_jobs_outcomes():
	set_type(TYPE, max_retries=0, concurrency="None")
	groups = mixed_sources(RUN + "bf-dry")
	targets_before = frappe.db.count("Sync Test Target")
	backfill = run_backfill(start(RUN + "bf-dry"))

	assert frappe.db.count("Sync Test Target") == targets_before, "a dry run wrote a target"
	jobs = jobs_of(backfill.name)
	assert len(jobs) == 7 and {job.source_document_name for job in jobs} == {
		n for g in groups.values() for n in g
	}
	by_jobs = {}
	for job in jobs:
		outcome = pure.outcome_of(
			job.status, job.operation, job.dry_run, job.conflict_count, job.diff_summary
		)
		by_jobs[outcome] = by_jobs.get(outcome, 0) + 1
	assert counts_of(backfill) == by_jobs == {"Insert": 3, "Update": 1, "Unchanged": 2, "Failed": 1}
	assert backfill.status == "Completed" and backfill.jobs_open == 0 and backfill.jobs_created == 7
	changes = json.loads(backfill.field_changes)
	assert changes["qty"] == 4 and changes["title"] == 3, (
		changes
	)  # three inserts set qty; one update moves it
	samples = json.loads(backfill.sample_diffs)
	assert len(samples) == 4 and {s["outcome"] for s in samples} == {"Insert", "Update"}
	[group] = json.loads(backfill.failure_groups)
	assert (
		group["count"] == 1
		and "backfill fixture" in group["title"]
		and group["example"] in {j.name for j in jobs}
	)


def test_apply_creates_real_jobs_only_for_the_documents_that_would_change():
	set_type(TYPE, max_retries=0, concurrency="None")
	groups = mixed_sources(RUN + "bf-apply")
	dry_run = run_backfill(start(RUN + "bf-apply"))
	applied = act(dry_run.name, "apply", only_changes=1)
	frappe.db.commit()
	applied = run_backfill(applied.name)
	jobs = jobs_of(applied.name)
	assert sorted(job.source_document_name for job in jobs) == sorted(groups["insert"] + groups["update"])
	assert not any(job.dry_run for job in jobs)
	assert counts_of(applied) == {"Insert": 3, "Update": 1}
	for name in groups["insert"] + groups["update"]:
		assert frappe.db.get_value("Sync Test Target", {"source": name}, "qty") == frappe.db.get_value(
			"Sync Test Source", name, "qty"
		)
	with pytest.raises(frappe.ValidationError, match="applied already"):
		act(dry_run.name, "apply", only_changes=0)  # once is enough: a second would sync it all again
	frappe.db.rollback()
	second_look = run_backfill(start(RUN + "bf-apply"))
	everything = act(second_look.name, "apply", only_changes=0)
	frappe.db.commit()
	everything = run_backfill(everything.name)
	assert len(jobs_of(everything.name)) == 7
	assert counts_of(everything) == {"Unchanged": 6, "Failed": 1}, "the first apply already wrote the rest"


def test_a_real_apply_needs_a_completed_dry_run():
	sources(RUN + "bf-early", 2)
	name = start(RUN + "bf-early")
	with pytest.raises(frappe.ValidationError):
		act(name, "apply")
	real = run_backfill(start(RUN + "bf-early", dry_run=False))
	with pytest.raises(frappe.ValidationError):
		act(real.name, "apply")


def test_jobs_are_created_in_chunks_each_committed_with_the_cursor(monkeypatch):
	monkeypatch.setattr(creation, "CHUNK", 4)
	names = sorted(sources(RUN + "bf-chunks", 10))
	backfill = start(RUN + "bf-chunks", limit=9)
	assert creation.create_chunk(backfill) is True
	frappe.db.rollback()
	stored = frappe.get_doc("Sync Backfill", backfill)
	assert (stored.documents_selected, stored.jobs_created, stored.last_source) == (4, 4, names[3])
	assert stored.total_documents == 9 and stored.status == "Creating"
	assert creation.create_chunk(backfill) is True
	assert creation.create_chunk(backfill) is False, "the limit ends the selection"
	frappe.db.rollback()
	jobs = jobs_of(backfill)
	assert sorted(job.source_document_name for job in jobs) == names[:9]
	assert frappe.db.get_value("Sync Backfill", backfill, "status") == "Running"


def test_a_creator_that_dies_mid_chunk_loses_only_that_chunk_and_resume_continues(monkeypatch):
	monkeypatch.setattr(creation, "CHUNK", 3)
	names = sorted(sources(RUN + "bf-crash", 8))
	backfill = start(RUN + "bf-crash")
	assert creation.create_chunk(backfill)
	real = creation.enqueue_sync_jobs

	def dies_after_inserting(*args, **kwargs):
		real(*args, **kwargs)
		raise SystemExit("worker killed")  # not an Exception: nothing catches it, nothing commits

	monkeypatch.setattr(creation, "enqueue_sync_jobs", dies_after_inserting)
	with pytest.raises(SystemExit):
		creation.create_chunk(backfill)
	frappe.db.rollback()
	assert len(jobs_of(backfill)) == 3, "the dead chunk's jobs were rolled back with its cursor"
	monkeypatch.setattr(creation, "enqueue_sync_jobs", real)
	# maintenance finds the creator gone (its heartbeat is old, its RQ job no longer queued)
	lose_creator(backfill)
	assert creation.resume_stalled() == [backfill]
	creation.create_jobs_until_done(backfill)
	jobs = jobs_of(backfill)
	assert sorted(job.source_document_name for job in jobs) == names, "every document once"


def test_cancel_stops_creating_and_cancels_the_jobs_not_started(monkeypatch):
	monkeypatch.setattr(creation, "CHUNK", 5)
	sources(RUN + "bf-cancel", 12)
	backfill = start(RUN + "bf-cancel")
	assert creation.create_chunk(backfill)
	act(backfill, "cancel", reason="wrong filters")  # cancels the first chunk of jobs at once
	frappe.db.commit()
	assert creation.create_chunk(backfill) is False
	assert creation.cancel_open_jobs(backfill) == 0, "nothing was left for the cancel's RQ job"
	rollup.fold(backfill)
	frappe.db.rollback()
	stored = frappe.get_doc("Sync Backfill", backfill)
	assert stored.status == "Canceled" and stored.cancel_reason == "wrong filters"
	assert {job.status for job in jobs_of(backfill)} == {"Canceled"} and len(jobs_of(backfill)) == 5
	assert counts_of(stored) == {"Canceled": 5} and stored.jobs_open == 0


def test_bad_filters_are_refused_before_anything_is_created():
	with pytest.raises(frappe.ValidationError):
		new_backfill(TYPE, filters={"no_such_field": 1})
	with pytest.raises(frappe.ValidationError):
		new_backfill(TYPE, filters="not json")
	frappe.db.rollback()
	assert not frappe.db.count("Sync Backfill")


def test_relayed_children_count_in_the_rollup():
	make_source(RUN + "bf-relay a", items=[("x", 1), ("y", 2)])
	make_source(RUN + "bf-relay b", items=[("z", 1), ("w", 1)])
	make_source(RUN + "bf-relay c")  # no items: no target
	backfill = new_backfill("Test Multi Sync", filters={"title": ["like", RUN + "bf-relay %"]}, dry_run=True)
	act(backfill.name, "start")
	frappe.db.commit()
	creation.create_jobs_until_done(backfill.name)
	run_queued()
	rollup.fold(backfill.name)
	stored = frappe.get_doc("Sync Backfill", backfill.name)
	assert counts_of(stored) == {"Relayed": 2, "Insert": 4, "No Target": 1}
	assert stored.status == "Completed"


def test_backfills_need_system_manager_and_read_permission_on_the_sources():
	sources(RUN + "bf-perm", 2)
	args = {"sync_job_type": TYPE, "source_filters": json.dumps({"title": ["like", RUN + "bf-perm %"]})}
	for user, roles in (("Guest", None), ("plain@example.com", []), ("sm@example.com", ["System Manager"])):
		with as_user(user, roles), pytest.raises(frappe.PermissionError):
			call(CREATE_BACKFILL, **args)
	frappe.db.rollback()
	assert not frappe.db.count("Sync Backfill"), "a refused request left a backfill"
	with as_user("sm-tester@example.com", ["System Manager", "Sync Tester"]):
		name = call(CREATE_BACKFILL, **args)
	creation.create_jobs_until_done(name)
	owners = {
		job.owner for job in frappe.get_all("Sync Job", filters={"sync_backfill": name}, fields=["owner"])
	}
	assert owners == {"sm-tester@example.com"}, "the jobs run as the user who started the backfill"
	with as_user("plain@example.com", []), pytest.raises(frappe.PermissionError):
		call_doc_method(frappe.get_doc("Sync Backfill", name), "cancel_backfill")
	assert frappe.db.get_value("Sync Backfill", name, "status") == "Running"


def test_the_creator_selects_as_the_backfill_owner_even_when_maintenance_resumes_it(monkeypatch):
	"""The owner loses read permission on the sources after the first chunk: the resumed creator
	(run by maintenance, as Administrator) creates nothing more and the backfill fails saying why."""
	monkeypatch.setattr(creation, "CHUNK", 2)
	sources(RUN + "bf-owner", 5)
	with as_user("sm-tester@example.com", ["System Manager", "Sync Tester"]):
		name = start(RUN + "bf-owner")
		assert creation.create_chunk(name)
	with as_user("sm-tester@example.com", ["System Manager"]):
		pass  # the Sync Tester role is taken away
	lose_creator(name)
	assert frappe.session.user == "Administrator"
	assert creation.resume_stalled() == [name]
	creation.create_jobs_until_done(name)
	stored = frappe.get_doc("Sync Backfill", name)
	assert stored.status == "Failed" and stored.jobs_created == 2
	assert "permission" in (stored.error_message or "").lower() or "Sync Test Source" in stored.error_message


def test_the_cli_creates_a_backfill_follows_it_and_prints_the_rollup(cli, workers):
	set_type(TYPE, concurrency="None")
	sources(RUN + "bf-cli", 3)
	workers(1)
	filters = json.dumps({"title": ["like", RUN + "bf-cli %"]})
	result = cli("backfill", TYPE, "--dry-run", "--filters", filters)
	assert result.exit_code == 0, result.output
	assert "Created 3 job(s)" in result.output and "Would insert" in result.output, result.output
	[name] = frappe.get_all("Sync Backfill", pluck="name")
	assert frappe.db.get_value("Sync Backfill", name, ["status", "insert_count"]) == ("Completed", 3)
	applied = cli("backfill-apply", name, "--only-changes")
	assert applied.exit_code == 0 and "Insert" in applied.output, applied.output
	assert frappe.db.count("Sync Test Target", {"title": ["like", RUN + "bf-cli %"]}) == 3


@pytest.mark.parametrize(
	"args, exit_code, message",
	[
		(("backfill", TYPE, "--filters", "{bad"), 2, "not valid JSON"),
		(("backfill", TYPE, "--filters", "3"), 2, "JSON object or list"),
		(("backfill", "No Such Type"), 1, "does not exist"),
		(("backfill", TYPE, "--filters", '{"no_such_field": 1}'), 1, "has no field no_such_field"),
		(("backfill-apply", "nope"), 1, "does not exist"),
		(("backfill-cancel", "nope"), 1, "does not exist"),
		(("backfill", TYPE, "--filters", '[["User", "name", "=", "x"]]'), 1, "or its child tables"),
	],
)
def test_the_cli_refuses_bad_input_clearly(cli, args, exit_code, message):
	result = cli(*args)
	assert result.exit_code == exit_code and message in result.output, result.output
	assert not frappe.db.count("Sync Backfill")


def test_the_cli_cancels_a_backfill_and_its_jobs_not_started(cli, monkeypatch):
	monkeypatch.setattr(creation, "CHUNK", 3)
	sources(RUN + "bf-cli-cancel", 5)
	name = start(RUN + "bf-cli-cancel")
	assert creation.create_chunk(name)
	result = cli("backfill-cancel", name, "--reason", "not now")
	assert result.exit_code == 0 and "3 job(s) not started" in result.output, result.output
	assert frappe.db.get_value("Sync Backfill", name, ["status", "cancel_reason"]) == ("Canceled", "not now")
	assert set(frappe.get_all("Sync Job", filters={"sync_backfill": name}, pluck="status")) == {"Canceled"}
	again = cli("backfill-cancel", name)
	assert again.exit_code == 1 and "Cannot cancel" in again.output, again.output


def test_a_backfill_still_running_cannot_be_deleted_and_an_ended_one_can():
	sources(RUN + "bf-delete", 2)
	name = start(RUN + "bf-delete")
	with pytest.raises(frappe.ValidationError):
		frappe.delete_doc("Sync Backfill", name)
	run_backfill(name)
	frappe.delete_doc("Sync Backfill", name)
	frappe.db.commit()
	assert not frappe.db.exists("Sync Backfill", name)
	assert len(jobs_of(name)) == 2, "its jobs stay (they name a backfill that is gone)"


def test_small_backfill_completes_when_its_jobs_end_before_the_last_chunk(monkeypatch):
	"""The jobs of the first chunk end before the creator commits the last one: no fold after that
	commit would see them end, so the creator folds itself."""
	monkeypatch.setattr(creation, "CHUNK", 2)
	set_type(TYPE, concurrency="None")
	sources(RUN + "bf-small", 3)
	name = start(RUN + "bf-small")
	assert creation.create_chunk(name)
	run_queued()
	creation.create_jobs_until_done(name)  # the last chunk: one document
	run_queued()
	assert frappe.db.get_value("Sync Backfill", name, "status") == "Completed"


def test_a_dry_run_counts_the_documents_whose_sync_would_meet_target_edits():
	"""Conflicts: a target edited by hand since its last sync, which the sync would change."""
	from tests.test_conflicts import edit_source, edit_target, sync

	set_type(TYPE, on_conflict="Stop for Review", concurrency="None")
	edited, untouched = make_source(RUN + "bf-conflict 0", qty=1), make_source(RUN + "bf-conflict 1", qty=1)
	for source in (edited, untouched):
		assert sync(source).status == "Finished"
		edit_source(source, qty=2)
	edit_target(edited, qty=7)  # a person corrected it
	backfill = run_backfill(start(RUN + "bf-conflict"))
	assert counts_of(backfill) == {"Conflict": 1, "Update": 1}
	assert json.loads(backfill.field_changes) == {"qty": 2}
	assert frappe.db.get_value("Sync Test Target", {"source": edited.name}, "qty") == 7, "a dry run wrote"


def test_transient_errors_fail_the_backfill_after_five_takeovers(monkeypatch):
	"""Each takeover by maintenance (its creator finished after the error) keeps the count."""
	monkeypatch.setattr(creation, "CHUNK", 2)
	sources(RUN + "bf-transient", 4)
	name = start(RUN + "bf-transient")

	def deadlocks(*args, **kwargs):
		raise frappe.QueryTimeoutError("Lock wait timeout exceeded; try restarting transaction")

	monkeypatch.setattr(creation, "enqueue_sync_jobs", deadlocks)
	for _minute in range(creation.TRANSIENT_LIMIT):
		lose_creator(name)
		creation.resume_stalled()
		creation.create_jobs(name, frappe.db.get_value("Sync Backfill", name, "creator_token"))
		frappe.db.commit()
	stored = frappe.get_doc("Sync Backfill", name)
	assert stored.status == "Failed" and "Lock wait timeout" in stored.error_message, stored.status
