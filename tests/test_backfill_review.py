"""Adversarial review of Sync Backfill (review17): each test reproduced one defect of the first
version (all 13 failed on it) and passes since its fix. Each docstring says what went wrong and why."""

import secrets

import frappe
import pytest
from frappe.utils.background_jobs import get_queue

from sync_tweaks.backfill import creation, rollup
from sync_tweaks.engine import rollup as pure
from sync_tweaks.queue import clock
from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import act, new_backfill
from tests.backfills import (
	CREATOR,
	RUN,
	TYPE,
	counts_of,
	jobs_outcomes,
	queued_rq_jobs,
	sources,
	start,
	stored,
)
from tests.utils import make_source, run_queued, set_type


def queued_creators(name: str) -> list:
	"""The creator RQ jobs of backfill `name` waiting in Redis."""
	queue = frappe.db.get_value("Sync Job Type", TYPE, "queue") or "default"
	found = []
	for rq_job in get_queue(queue).jobs:
		kwargs = rq_job.kwargs or {}
		if kwargs.get("method") == CREATOR and (kwargs.get("kwargs") or {}).get("backfill") == name:
			found.append(rq_job)
	return found


def test_fold_round_cap_completes_the_backfill_with_ended_jobs_never_counted(monkeypatch):
	"""A fold marks at most FOLD_LIMIT * FOLD_ROUNDS jobs (20,000), then computes `jobs_open` from the
	jobs not marked yet, counting only open statuses. The final jobs it had no room for are neither
	counted nor open, so jobs_open is 0 and the backfill moves Running -> Completed with part of its
	jobs missing from the roll-up. Maintenance folds only Creating/Running backfills, so nothing ever
	counts the rest: the roll-up stays short for good (and an apply with only_changes, which reads
	backfill_outcome, skips those documents). Any backlog above the cap (a worker fleet finishing
	faster than folds run, folds lost to a killed worker, maintenance catching up) triggers it; here
	the cap is lowered to 2 and the in-worker folds are switched off so one fold meets 5 ended jobs."""
	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "cap", 5)
	monkeypatch.setattr(rollup, "touch", lambda names, throttle=False: None)
	name = start(RUN + "cap")
	creation.create_jobs_until_done(name)
	run_queued()
	assert jobs_outcomes(name) == {"Insert": 5}
	monkeypatch.setattr(rollup, "FOLD_LIMIT", 2)
	monkeypatch.setattr(rollup, "FOLD_ROUNDS", 1)
	rollup.fold(name)
	for _ in range(3):
		creation.maintain()  # every minute in production
	backfill = stored(name)
	assert not (backfill.status == "Completed" and counts_of(backfill) != jobs_outcomes(name)), (
		f"Completed with roll-up {counts_of(backfill)} but the jobs did {jobs_outcomes(name)}"
	)


def test_maintenance_resume_of_a_creator_still_in_the_queue_starts_a_second_creator_chain(monkeypatch):
	"""The creator hands each slice to a new RQ job on the type's queue, behind the backfill's own
	sync jobs. When that RQ job waits longer than STALL_SECONDS (a busy queue), maintenance treats
	the backfill as stalled and enqueues another creator; both chains then keep re-enqueuing
	themselves at every slice end until creation ends. Each further stall adds one more chain, and
	every chain holds a worker waiting on the backfill's row lock (MariaDB: up to
	innodb_lock_wait_timeout) instead of running sync jobs."""
	monkeypatch.setattr(creation, "CHUNK", 1)
	monkeypatch.setattr(creation, "SLICE_SECONDS", -1)  # one chunk per RQ job
	sources(RUN + "chain", 6)
	name = start(RUN + "chain")
	assert len(queued_creators(name)) == 1
	# the creator RQ job has sat in a busy queue for longer than STALL_SECONDS
	frappe.db.set_value("Sync Backfill", name, "heartbeat_at", clock.now() - creation.STALL_SECONDS - 5)
	frappe.db.commit()
	creation.maintain()
	frappe.db.commit()
	pending = queued_creators(name)
	# run one round of every queued creator as a worker would (each commits at its RQ job's end)
	for rq_job in pending:
		rq_job.delete()
		creation.create_jobs(**rq_job.kwargs["kwargs"])  # with the chain's token, as RQ calls it
		frappe.db.commit()
	assert len(queued_creators(name)) <= 1, (
		f"{len(queued_creators(name))} creator chains of one backfill are queued"
	)


def test_backfill_whose_last_job_ended_before_creation_ended_stays_running(monkeypatch):
	"""The last chunk moves the backfill Creating -> Running; only a fold moves it to Completed, and
	folds run when jobs end. If every job ended while the backfill was still Creating (jobs run as
	chunks commit; a final chunk can be empty when the documents are a multiple of the chunk size,
	or filtered away by permissions), nothing folds after the last chunk: the form shows Running
	with 0 jobs open until maintenance happens by, and `sync-job backfill --no-wait` or a site
	without the scheduler never sees it Completed. The last chunk should fold (or complete) itself."""
	set_type(TYPE, max_retries=0, concurrency="None")
	monkeypatch.setattr(creation, "CHUNK", 2)
	sources(RUN + "tail", 2)
	name = start(RUN + "tail")
	assert creation.create_chunk(name) is True  # a full chunk: more may follow
	run_queued()  # the jobs run while the backfill is still Creating (their folds see Creating)
	assert creation.create_chunk(name) is False  # the empty last chunk
	backfill = stored(name)
	assert backfill.jobs_open == 0 and jobs_outcomes(name) == {"Insert": 2}
	assert backfill.status == "Completed", f"{backfill.status} with no job open"


def test_insert_accepts_preset_cursor_and_rollup_fields(monkeypatch):
	"""Only `status` is reset on insert: last_source, documents_selected, jobs_created, the outcome
	counts and JSON roll-up are taken from the request as given (read_only is a Desk hint only).
	A backfill inserted through the REST API (/api/resource/Sync Backfill) with last_source set
	skips every document up to it, and with preset counts its roll-up never equals its jobs'
	outcomes. before_insert should clear every field the backfill machinery owns."""
	set_type(TYPE, max_retries=0, concurrency="None")
	names = sorted(sources(RUN + "preset", 3))
	backfill = frappe.get_doc(
		{
			"doctype": "Sync Backfill",
			"sync_job_type": TYPE,
			"source_filters": frappe.as_json({"title": ["like", RUN + "preset%"]}),
			"dry_run": 1,
			"last_source": names[1],
			"outcome_counts": frappe.as_json({"Unchanged": 1000}),
			"unchanged_count": 1000,
		}
	).insert()
	act(backfill.name, "start")
	frappe.db.commit()
	creation.create_jobs_until_done(backfill.name)
	run_queued()
	rollup.fold(backfill.name)
	backfill = stored(backfill.name)
	assert counts_of(backfill) == jobs_outcomes(backfill.name) == {"Insert": 3}, (
		f"roll-up {counts_of(backfill)}, jobs {jobs_outcomes(backfill.name)}"
	)


def test_a_transient_database_error_fails_the_backfill_for_good(monkeypatch):
	"""create_chunk turns every Exception into Failed, including transient ones (a deadlock or lock
	wait timeout against the workers' folds and claims on MariaDB). Maintenance resumes only
	Creating backfills, so a backfill that met one deadlock stays Failed with its remaining
	documents never selected until a person presses Resume. A transient error should roll back the
	chunk and leave the backfill Creating for the next slice / maintenance to retry."""
	set_type(TYPE, max_retries=0, concurrency="None")
	monkeypatch.setattr(creation, "CHUNK", 2)
	sources(RUN + "deadlock", 4)
	name = start(RUN + "deadlock")
	real = creation.enqueue_sync_jobs
	calls = []

	def deadlocks_once(*args, **kwargs):
		if not calls:
			calls.append(1)
			# MariaDB's 1205 (lock wait timeout) is QueryTimeoutError in Frappe; 1213 is QueryDeadlockError
			error = getattr(frappe, "QueryDeadlockError", frappe.QueryTimeoutError)
			raise error("Lock wait timeout exceeded; try restarting transaction")
		return real(*args, **kwargs)

	monkeypatch.setattr(creation, "enqueue_sync_jobs", deadlocks_once)
	creation.create_jobs(name)
	frappe.db.commit()
	frappe.db.set_value("Sync Backfill", name, "heartbeat_at", clock.now() - creation.STALL_SECONDS - 5)
	frappe.db.commit()
	creation.maintain()
	frappe.db.commit()
	creation.create_jobs_until_done(name)  # what the resumed creator would do
	backfill = stored(name)
	assert backfill.status != "Failed" and backfill.documents_selected == 4, (
		f"{backfill.status} after one transient deadlock: {backfill.error_message}"
	)


def test_a_cancel_whose_rq_job_is_lost_never_cancels_the_open_jobs(monkeypatch):
	"""Cancel moves the backfill to Canceled and leaves the cancelling of its open jobs to one RQ job
	(`cancel_open_jobs`, pushed after commit). If that RQ job never runs to its end (the worker is
	SIGKILLed or hits CREATOR_TIMEOUT on a large backfill, Redis is flushed or down at the push),
	nothing ever retries it: maintenance only resumes Creating backfills and folds Creating/Running
	ones. The Canceled backfill's Waiting jobs then all run and write their targets. The cancel
	should be durable: cancel the first chunk in the request, or have maintenance cancel the open
	jobs of every Canceled backfill."""
	set_type(TYPE, max_retries=0, concurrency="None")
	monkeypatch.setattr(creation, "CHUNK", 3)
	sources(RUN + "lostcancel", 3)
	name = start(RUN + "lostcancel", dry_run=False)
	creation.create_jobs_until_done(name)
	act(name, "cancel", reason="wrong filters")
	frappe.db.commit()
	[rq_job] = queued_rq_jobs("sync_tweaks.backfill.creation.cancel_open_jobs", name)
	rq_job.delete()  # its worker was killed / Redis lost it
	from sync_tweaks.queue import maintenance

	maintenance.run_maintenance()
	frappe.db.commit()
	run_queued()
	frappe.db.rollback()
	ran = frappe.get_all(
		"Sync Job", filters={"sync_backfill": name, "status": ["!=", "Canceled"]}, pluck="status"
	)
	assert stored(name).status == "Canceled"
	assert not ran, f"jobs of a Canceled backfill ran or wait to run: {ran}"


def test_a_job_running_at_cancel_still_retries_after_the_backfill_is_canceled(monkeypatch):
	"""Cancel cancels the jobs that have not started, once. A job that was Started at that moment and
	then fails with retries left becomes Failed with a retry due (due_at > 0): nobody cancels it any
	more, so the Canceled backfill's job runs again (and again) and may write its target; a job
	deferred by SyncJobRetryAfter comes back as Waiting the same way. The backfill's Canceled status
	should stop its retries too (cancel a job of a Canceled backfill when it fails or defers, or
	re-run cancel_open_jobs from the folds/maintenance while such jobs exist)."""
	from sync_tweaks.queue import maintenance, worker

	set_type(TYPE, max_retries=2, retry_delay=0, concurrency="None")
	make_source(RUN + "retrycancel 000", notes="fail: still failing")
	name = start(RUN + "retrycancel", dry_run=False)
	creation.create_jobs_until_done(name)
	frappe.db.rollback()
	[row] = frappe.get_all("Sync Job", filters={"sync_backfill": name}, fields=["name", "status", "job_id"])
	assert row.status == "Queued"
	job = worker.claim(row.name, row.job_id)  # a worker starts it
	assert job and job.status == "Started"
	act(name, "cancel", reason="stop")
	frappe.db.commit()
	assert creation.cancel_open_jobs(name) == 0  # it had started: not canceled
	worker.run_sync_job(job, row.job_id)  # ... and fails, with retries left
	for _ in range(3):
		maintenance.run_maintenance()
		frappe.db.commit()
		run_queued()
	frappe.db.rollback()
	retries = frappe.db.get_value("Sync Job", row.name, "retry_count")
	status, due_at = frappe.db.get_value("Sync Job", row.name, ["status", "due_at"])
	assert not retries and not (status == "Failed" and due_at), (
		f"the Canceled backfill's job ran {retries} more time(s) ({status}, due_at={due_at})"
	)


def test_a_canceled_backfill_whose_late_fold_is_lost_is_never_folded_again(monkeypatch):
	"""Jobs already Started at cancel end later; only their own after-commit fold counts them, since
	maintenance folds Creating and Running backfills only. When that fold is lost (the worker dies
	between its commit and the fold, Redis errors in the throttle, the fold's lock wait times out
	and is logged, a throttled fold waiting for its RQ job's end that never comes), the Canceled
	backfill's roll-up stays short for good. Here the job ends with in-worker folds switched off;
	three maintenance runs later its outcome is still not in the roll-up. fold_active should
	include Canceled backfills with unfolded jobs (e.g. those with jobs_open > 0)."""
	from sync_tweaks.queue import maintenance, worker

	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "latefold", 2)
	name = start(RUN + "latefold", dry_run=True)
	creation.create_jobs_until_done(name)
	frappe.db.rollback()
	rows = frappe.get_all(
		"Sync Job", filters={"sync_backfill": name}, fields=["name", "job_id"], order_by="name"
	)
	job = worker.claim(rows[0].name, rows[0].job_id)  # started before the cancel
	act(name, "cancel")  # cancels the other job at once
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", rows[1].name, "status") == "Canceled"
	monkeypatch.setattr(rollup, "touch", lambda names, throttle=False: None)  # its fold is lost
	worker.run_sync_job(job, rows[0].job_id)
	monkeypatch.undo()
	for _ in range(3):
		maintenance.run_maintenance()
		frappe.db.commit()
	backfill = stored(name)
	assert counts_of(backfill) == jobs_outcomes(name), (
		f"roll-up {counts_of(backfill)} (jobs_open={backfill.jobs_open}), jobs {jobs_outcomes(name)}"
	)


def frappe_15_join(real_get_list):
	"""frappe.get_list as Frappe 15's DatabaseQuery runs it for a child-table filter: `left join
	tabChild on (parenttype=... and parent=name)` with no `distinct` (frappe/model/db_query.py,
	prepare_args), so a parent comes back once per matching child row. The stand-in filters child
	tables with EXISTS instead; this wrapper gives its answer Frappe's join multiplicity."""

	def get_list(doctype, *args, **kwargs):
		filters = kwargs.get("filters") or []
		child = [f for f in filters if isinstance(f, list | tuple) and len(f) == 4]
		names = real_get_list(doctype, *args, **kwargs)
		if doctype != "Sync Test Source" or not child or kwargs.get("pluck") != "name":
			return names
		if kwargs.get("distinct"):
			return names  # Frappe selects distinct names then
		[(child_doctype, field, operator, value)] = child
		assert (child_doctype, field, operator) == ("Sync Test Item", "item_code", "like")
		joined = []
		for name in names:
			rows = frappe.db.sql(
				"""select count(*) from `tabSync Test Item` where parenttype='Sync Test Source'
				and parent=%s and item_code like %s""",
				(name, value),
			)[0][0]
			joined.extend([name] * rows)
		limit = kwargs.get("limit_page_length")
		return joined[:limit] if limit else joined

	return get_list


def test_a_child_table_filter_gives_a_document_one_job_per_matching_row(monkeypatch):
	"""check_filter_fields accepts [child doctype, field, operator, value] filters, and select_sources
	hands them to frappe.get_list, which in Frappe joins the child table without DISTINCT: a source
	with two matching item rows is selected twice in one chunk and gets two jobs of the same
	backfill (invariant 1 broken: documents_selected and jobs_created double, both jobs run in its
	line, the roll-up counts the document twice, estimate's db.count counts rows too). The
	selection should use distinct names (group by / distinct=True, or EXISTS)."""
	set_type(TYPE, max_retries=0, concurrency="None")
	monkeypatch.setattr(frappe, "get_list", frappe_15_join(frappe.get_list))
	prefix = RUN + "childfilter"
	for i in range(2):
		make_source(f"{prefix} {i}", items=[("bf-a", 1), ("bf-b", 2)])
	backfill = new_backfill(
		TYPE,
		filters=[["title", "like", prefix + "%"], ["Sync Test Item", "item_code", "like", "bf-%"]],
		dry_run=True,
	)
	act(backfill.name, "start")
	frappe.db.commit()
	creation.create_jobs_until_done(backfill.name)
	frappe.db.rollback()
	per_source: dict[str, int] = {}
	for source in frappe.get_all(
		"Sync Job", filters={"sync_backfill": backfill.name}, pluck="source_document_name"
	):
		per_source[source] = per_source.get(source, 0) + 1
	assert per_source and set(per_source.values()) == {1}, f"jobs per source: {per_source}"


def test_one_job_with_an_unusual_diff_freezes_the_rollup_for_good(monkeypatch):
	"""A bypass controller's execute() may return any `diff` (apply.bypass checks only that the result
	is a dict); the worker stores it as JSON. RollUp.add assumes a dict of lists of lists: a diff that
	is a string, a list, or whose entries are objects raises (AttributeError/KeyError) inside the
	fold. fold() logs and rolls back, so that job is never marked, and every later fold of the
	backfill meets it first and fails again: the roll-up stops moving, the backfill never leaves
	Running (the CLI's `sync-job backfill` waits forever) and only Error Logs pile up. The fold should
	treat a diff it cannot read as "no field changes" (or count the job without fields)."""
	from sync_tweaks_tests.sync_tweaks_tests.sync_job_type.test_bypass_sync import test_bypass_sync

	set_type("Test Bypass Sync", max_retries=0, concurrency="None")
	prefix = RUN + "oddiff"
	odd = make_source(f"{prefix} 0").name
	make_source(f"{prefix} 1")
	real = test_bypass_sync.execute

	def execute(sync_job, source_doc):
		result = real(sync_job, source_doc)
		if source_doc.name == odd:
			result["diff"] = "title set from the source"  # a free-text summary
		return result

	monkeypatch.setattr(test_bypass_sync, "execute", execute)
	backfill = new_backfill("Test Bypass Sync", filters={"title": ["like", prefix + "%"]}, dry_run=True)
	act(backfill.name, "start")
	frappe.db.commit()
	creation.create_jobs_until_done(backfill.name)
	run_queued()
	for _ in range(3):
		rollup.fold(backfill.name)
		creation.maintain()
	backfill = stored(backfill.name)
	assert backfill.status == "Completed" and sum(counts_of(backfill).values()) == 2, (
		f"{backfill.status}, roll-up {counts_of(backfill)} for 2 ended jobs (jobs_open={backfill.jobs_open})"
	)


def test_cancel_waits_behind_the_backfills_own_queued_jobs_which_all_run(monkeypatch, site_conf):
	"""Cancel pushes `cancel_open_jobs` to the back of the type's RQ queue, behind the RQ jobs the
	dispatcher already pushed for the backfill's Queued jobs (up to sync_job_max_queued, each of
	which then drains more for sync_job_drain_seconds). A worker takes RQ jobs in order, so every job
	Queued at the moment of the cancel - not started, the very jobs cancel promises to cancel - runs
	first and writes its target; by the time cancel_open_jobs runs it has nothing left to cancel.
	Here a worker is played in-process, taking the queue's RQ jobs in order. Cancel should take
	effect at once: cancel the first chunk in the request, push its job at_front, and have claim()
	refuse a job whose backfill is Canceled."""
	from sync_tweaks.queue import worker

	site_conf(sync_job_batch_size=2)
	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "cancelq", 6)
	name = start(RUN + "cancelq", dry_run=False)
	creation.create_jobs_until_done(name)
	frappe.db.rollback()
	queued = frappe.get_all("Sync Job", filters={"sync_backfill": name, "status": "Queued"}, pluck="name")
	assert queued, "the chunk's jobs were dispatched"
	act(name, "cancel", reason="wrong type")
	frappe.db.commit()
	queue = get_queue(frappe.db.get_value("Sync Job Type", TYPE, "queue") or "default")
	for rq_job in list(queue.jobs):  # one worker, in queue order
		rq_job.delete()
		kwargs = rq_job.kwargs.get("kwargs") or {}
		if rq_job.kwargs.get("method") == "sync_tweaks.backfill.creation.cancel_open_jobs":
			creation.cancel_open_jobs(kwargs["backfill"])
			frappe.db.commit()
		elif kwargs.get("sync_job_names"):
			worker.run_batch(kwargs["sync_job_names"], rq_job.id.rsplit("::", 1)[-1])
	frappe.db.rollback()
	ran = frappe.get_all(
		"Sync Job", filters={"sync_backfill": name, "status": ["!=", "Canceled"]}, pluck="status"
	)
	assert not ran, f"{len(ran)} of {len(queued)} jobs Queued at the cancel still ran after it: {ran}"


def test_apply_after_log_cleanup_silently_applies_nothing():
	"""An apply selects its documents from the dry run's Sync Jobs. Sync Job's clear_old_logs (Log
	Settings, 30 days by default) deletes those jobs, while the dry-run backfill and its roll-up
	stay: applying it later creates no job at all and the applied backfill is Completed at once,
	with no error - the user believes the changes the roll-up shows were applied. Apply should
	refuse (or fall back to the dry run's filters) when the dry run's jobs are no longer there."""
	from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import SyncJob

	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "cleanup", 3)
	name = start(RUN + "cleanup")
	creation.create_jobs_until_done(name)
	run_queued()
	rollup.fold(name)
	dry_run = stored(name)
	assert dry_run.status == "Completed" and counts_of(dry_run) == {"Insert": 3}
	SyncJob.clear_old_logs(days=-1)  # the retention period has passed
	frappe.db.commit()
	try:
		applied = act(name, "apply", only_changes=0)
		frappe.db.commit()
	except frappe.ValidationError:
		return  # refused: fine
	creation.create_jobs_until_done(applied.name)
	run_queued()
	rollup.fold(applied.name)
	applied = stored(applied.name)
	assert applied.jobs_created == 3, (
		f"apply of a dry run that would insert 3 targets: {applied.status} with "
		f"{applied.jobs_created} job(s) and no error"
	)


def test_maintenance_folds_only_the_oldest_twenty_running_backfills(monkeypatch):
	"""fold_active takes the 20 oldest Creating/Running backfills, always the same ones: a backfill
	stays Running for as long as one of its jobs waits for a retry (retry_delay with backoff can be
	hours) or for a paused type, so 20 such old backfills keep maintenance from ever folding any
	newer one, whose roll-up then depends on in-worker folds alone (see the lost-fold cases). The
	limit is lowered to 1 here (one old backfill stands for twenty). fold_active should rotate
	(order by the last fold time) or select only backfills with unfolded ended jobs."""
	monkeypatch.setattr(rollup.fold_active, "__defaults__", (1,))
	set_type(TYPE, max_retries=3, retry_delay=3600, concurrency="None")
	make_source(RUN + "old 000", notes="fail: retried in an hour")
	old = start(RUN + "old")
	creation.create_jobs_until_done(old)
	run_queued()
	rollup.fold(old)
	assert stored(old).status == "Running" and stored(old).jobs_open == 1  # a retry is due later
	sources(RUN + "new", 2)
	monkeypatch.setattr(rollup, "touch", lambda names, throttle=False: None)  # folds lost
	new = start(RUN + "new")
	creation.create_jobs_until_done(new)
	run_queued()
	for _ in range(3):
		creation.maintain()
	backfill = stored(new)
	assert counts_of(backfill) == jobs_outcomes(new), (
		f"maintenance never folded the newer backfill: roll-up {counts_of(backfill)}, jobs {jobs_outcomes(new)}"
	)
