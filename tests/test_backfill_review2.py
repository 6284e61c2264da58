"""Adversarial review of Sync Backfill, second round (review17b): each test reproduces a defect left
after the first review's fixes and FAILS on the current code. Each docstring says what goes wrong."""

import secrets

import frappe
import pytest
from frappe.utils.background_jobs import get_queue

from sync_tweaks.backfill import creation, rollup
from sync_tweaks.queue import clock
from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import act, new_backfill
from tests.backfills import CANCELER, CREATOR, RUN, TYPE, queued_rq_jobs, sources, start, stored
from tests.test_security import as_user
from tests.utils import make_source, run_queued, set_type


def test_deleting_a_canceled_backfill_lets_its_uncanceled_jobs_run(monkeypatch):
	"""cancel() cancels one chunk (CHUNK jobs) in the request and leaves the rest to an RQ job, with
	two safety nets: maintenance's cancel_leftovers (Canceled backfills with jobs_open > 0) and the
	claim gate (job_refusal: the job's backfill is Canceled). Both look the backfill up by name. A
	Canceled backfill may be deleted at once (on_trash refuses only Creating/Running, and its jobs
	are kept, naming a backfill that is gone): then job_refusal reads status None, not "Canceled",
	and lets the job run, and cancel_leftovers no longer finds it. Cancel, then delete (a natural
	"clean up this mistake" click) before the RQ cancel job has run (a busy queue, a lost push): every
	job beyond the first chunk runs and writes its target, the very jobs cancel promised to stop.
	Here the chunk is 2 of 5 jobs. Fix: refuse deleting a backfill while it has jobs not ended (or
	cancel them all in on_trash), and treat a missing backfill as canceled in job_refusal."""
	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "delcancel", 5)
	name = start(RUN + "delcancel", dry_run=False)
	creation.create_jobs_until_done(name)
	monkeypatch.setattr(creation.cancel_open_jobs, "__defaults__", (2, 0, True))  # CHUNK = 2
	act(name, "cancel", reason="wrong filters")
	frappe.db.commit()
	for rq_job in queued_rq_jobs(CANCELER, name):
		rq_job.delete()  # not run yet (a busy queue) or lost
	# refused while jobs are open; should the row go anyway (a direct delete), the claim cancels them
	with pytest.raises(frappe.ValidationError):
		frappe.delete_doc("Sync Backfill", name)
	frappe.db.rollback()
	frappe.db.delete("Sync Backfill", {"name": name})
	frappe.db.commit()
	from sync_tweaks.queue import maintenance

	maintenance.run_maintenance()
	frappe.db.commit()
	run_queued()
	frappe.db.rollback()
	ran = frappe.get_all(
		"Sync Job", filters={"sync_backfill": name, "status": ["!=", "Canceled"]}, pluck="status"
	)
	assert not ran, f"jobs of a canceled (then deleted) backfill ran: {ran}"


def test_a_dry_run_applied_twice_runs_every_document_twice():
	"""`apply` is allowed from Completed and leaves the dry run Completed, with nothing recording that
	it was applied: a second apply (a double click, two people, the CLI's backfill-apply run again
	after a timeout) creates a second real backfill with a second real job for every document. The
	jobs of two backfills have different identities (sync_backfill is an identity field), so they do
	not coalesce: each document is synced twice, and the target's writes (Insert operations, hooks,
	notifications) happen twice. Fix: remember the apply on the dry run (e.g. an `applied_by` link
	set under the row lock in `act`) and refuse a second one unless the first was canceled."""
	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "twice", 3)
	name = start(RUN + "twice")
	creation.create_jobs_until_done(name)
	run_queued()
	rollup.fold(name)
	assert stored(name).status == "Completed"
	applies = []
	for _click in range(2):
		try:
			applies.append(act(name, "apply", only_changes=0).name)
			frappe.db.commit()
		except frappe.ValidationError:
			frappe.db.rollback()
	for applied in applies:
		creation.create_jobs_until_done(applied)
	frappe.db.rollback()
	per_source: dict[str, int] = {}
	for source in frappe.get_all(
		"Sync Job", filters={"sync_backfill": ["in", applies]}, pluck="source_document_name"
	):
		per_source[source] = per_source.get(source, 0) + 1
	assert set(per_source.values()) == {1}, (
		f"{len(applies)} applies of one dry run: real jobs per document {per_source}"
	)


def test_a_disabled_owner_s_backfill_is_resumed_and_creates_jobs_that_run_as_them(monkeypatch):
	"""The creator selects as the backfill's owner and the jobs run as their owner; maintenance
	resumes a stalled creator (a killed worker, a busy queue) with frappe.set_user(owner), which does
	not look at `enabled`. A backfill of a user who was disabled meanwhile (offboarded: they may no
	longer log in, and the site admin believes they no longer act) goes on creating jobs with that
	user's permissions, and each job runs and writes the target as that user. Here the owner is
	disabled after the first chunk; maintenance's resume creates the remaining jobs as them. Fix:
	the creator (and resume_stalled) should fail the backfill when its owner is disabled or gone."""
	monkeypatch.setattr(creation, "CHUNK", 2)
	sources(RUN + "disabled", 5)
	user = "sm-offboarded@example.com"
	with as_user(user, ["System Manager", "Sync Tester"]):
		name = start(RUN + "disabled")
		assert creation.create_chunk(name)
	frappe.db.set_value("User", user, "enabled", 0)  # the person left
	frappe.db.set_value("Sync Backfill", name, "heartbeat_at", clock.now() - creation.STALL_SECONDS - 5)
	frappe.db.commit()
	for rq_job in queued_rq_jobs(CREATOR, name):
		rq_job.delete()  # the creator was lost (its worker was killed)
	assert creation.resume_stalled() == [name]
	frappe.db.commit()
	creation.create_jobs_until_done(name)
	backfill = stored(name)
	owners = set(frappe.get_all("Sync Job", filters={"sync_backfill": name}, pluck="owner"))
	assert backfill.jobs_created == 2, (
		f"after its owner {user} was disabled the backfill went on: {backfill.status}, "
		f"{backfill.jobs_created} jobs owned by {owners}"
	)


def test_a_recurring_transient_error_keeps_the_backfill_creating_forever_with_no_error_shown(monkeypatch):
	"""A transient error (is_transient: deadlock, lock wait timeout, QueryTimeoutError - which
	Frappe also raises for a statement that hit max_execution_time - or any interface error) leaves
	the backfill Creating without an error_message, for maintenance to resume. Nothing counts the
	tries: when the error recurs on the same chunk (a chunk query too slow for the statement limit,
	a lock that a long transaction keeps), maintenance resumes it every STALL_SECONDS forever. The
	form shows Creating with a progress bar that never moves and no error; only Error Logs pile up.
	Fix: count consecutive transient failures on the backfill (or in the heartbeat) and fail it,
	with the error, after a few; show the last error meanwhile."""
	set_type(TYPE, max_retries=0, concurrency="None")
	monkeypatch.setattr(creation, "CHUNK", 2)
	sources(RUN + "slow", 4)
	name = start(RUN + "slow")
	error = getattr(frappe, "QueryTimeoutError", None) or frappe.QueryDeadlockError

	def always_times_out(*args, **kwargs):
		raise error("Query execution was interrupted, maximum statement execution time exceeded")

	monkeypatch.setattr(creation, "enqueue_sync_jobs", always_times_out)
	for _minute in range(6):  # maintenance's resumes, STALL_SECONDS apart
		creation.create_jobs(name)  # the resumed creator
		frappe.db.commit()
		frappe.db.set_value("Sync Backfill", name, "heartbeat_at", clock.now() - creation.STALL_SECONDS - 5)
		frappe.db.commit()
		creation.resume_stalled()
		frappe.db.commit()
	backfill = stored(name)
	assert backfill.status == "Failed" or backfill.error_message, (
		f"after 6 failed tries of the same chunk: {backfill.status}, error_message="
		f"{backfill.error_message!r}, documents_selected={backfill.documents_selected}"
	)


def copy_doc(doc):
	"""frappe.copy_doc (and Desk's Duplicate): the document's values without its name, standard
	fields and `no_copy` fields (the stand-in has no copy_doc)."""
	values = doc.as_dict()
	for field in ("name", "owner", "creation", "modified", "modified_by"):
		values.pop(field, None)
	for df in frappe.get_meta(doc.doctype).fields:
		if df.get("no_copy"):
			values.pop(df.fieldname, None)
	return frappe.get_doc({**values, "doctype": doc.doctype})


def test_a_duplicated_job_of_a_canceled_backfill_is_silently_canceled_by_the_backfill_gate():
	"""Sync Job's `sync_backfill` is an ordinary Link without no_copy (only backfill_outcome has it),
	and before_insert keeps it: Desk's Duplicate (frappe.copy_doc) of a backfill's job, or a REST
	insert, gives the new job the backfill. The new job, which the backfill never created, is then
	governed by it: for a Canceled backfill the claim gate (job_refusal) cancels the person's fresh
	job at once with "Sync Backfill ... was canceled" and it never runs; for a Completed one it joins
	the roll-up (the document counted twice, the backfill back to Running, and for a dry run an apply
	takes it into its selection). Fix: no_copy on sync_backfill, and clear it in Sync Job's
	before_insert unless the backfill's creator (a flag) inserts the job."""
	set_type(TYPE, max_retries=0, concurrency="None")
	sources(RUN + "dup", 2)
	name = start(RUN + "dup", dry_run=False)
	creation.create_jobs_until_done(name)
	act(name, "cancel", reason="wrong filters")
	frappe.db.commit()
	original = frappe.get_all("Sync Job", filters={"sync_backfill": name}, pluck="name")[0]
	copy = copy_doc(frappe.get_doc("Sync Job", original))  # Desk: Duplicate, then Save
	copy.insert()
	frappe.db.commit()
	assert copy.status in ("Waiting", "Queued")  # a new job, on its way to run
	run_queued()
	copy = frappe.get_doc("Sync Job", copy.name)
	assert copy.status == "Finished", (
		f"a person's duplicate of a canceled backfill's job: {copy.status} "
		f"(sync_backfill={copy.sync_backfill!r}, {copy.cancel_reason!r})"
	)


def test_maintenance_takes_over_a_live_creator_whose_chunk_was_slow(monkeypatch):
	"""resume_stalled picks Creating backfills whose heartbeat is older than STALL_SECONDS with a
	plain read, then locks each one and checks only that it is still Creating - not the heartbeat.
	A chunk transaction that runs long (1000 inserts with hooks, a slow source query, a lock wait)
	holds the backfill's row; maintenance reads the old heartbeat, waits for the lock, and when the
	live creator commits its chunk (heartbeat fresh) resumes anyway: a new token ends the live chain
	and a new creator RQ job goes to the back of the (busy) queue, so creation pauses until it runs;
	a CLI `sync-job backfill` creating in the foreground silently stops creating. Here the live
	creator's chunk commits between maintenance's read and its lock. Fix: re-check the heartbeat
	under the lock (`if status == Creating and heartbeat_at < cutoff`)."""
	monkeypatch.setattr(creation, "CHUNK", 1)
	sources(RUN + "slowchunk", 4)
	name = start(RUN + "slowchunk")
	token = frappe.db.get_value("Sync Backfill", name, "creator_token")
	frappe.db.set_value("Sync Backfill", name, "heartbeat_at", clock.now() - creation.STALL_SECONDS - 5)
	frappe.db.commit()
	real_get_all = frappe.get_all

	def get_all(doctype, *args, **kwargs):
		names = real_get_all(doctype, *args, **kwargs)
		if doctype == "Sync Backfill" and name in names:
			assert creation.create_chunk(name, token)  # the live creator's slow chunk commits now
		return names

	monkeypatch.setattr(frappe, "get_all", get_all)
	creation.resume_stalled()
	frappe.db.commit()
	monkeypatch.setattr(frappe, "get_all", real_get_all)
	backfill = stored(name)
	assert backfill.creator_token == token, (
		f"maintenance replaced a creator whose heartbeat is {clock.now() - backfill.heartbeat_at:.1f} s old"
	)


def test_a_creator_queue_wait_longer_than_stall_seconds_never_creates_a_chunk_again(monkeypatch):
	"""The first review's fix for the stalled-but-queued creator was a chain token: maintenance's
	resume writes a new token and pushes a new creator RQ job to the back of the type's queue, and
	an older chain's job stops at its first chunk. resume() also sets heartbeat_at to now, so the
	next resume comes STALL_SECONDS later. When the queue's wait W is longer than STALL_SECONDS (a
	busy queue: the backfill's own sync_job_max_queued batch jobs, each draining for
	sync_job_drain_seconds, few workers), every creator RQ job reaches a worker only after the next
	resume replaced its token: it stops without creating anything, and so does the next one, for as
	long as the queue stays that busy. Before the token each chain eventually created; now the
	backfill makes no progress at all (a livelock) and looks Creating with a fresh heartbeat. Here
	each RQ job runs just after the following resume. Fix: let a resume keep the chain when its RQ
	job is still queued (remember the creator's RQ job id and check it, or enqueue with a fixed
	job_id and deduplicate), or push the resumed creator at_front."""
	monkeypatch.setattr(creation, "CHUNK", 1)
	sources(RUN + "busy", 3)
	name = start(RUN + "busy")
	for _resume in range(4):
		pending = queued_rq_jobs(CREATOR, name)
		if not pending:
			break  # the chain created everything
		# STALL_SECONDS pass with the creator's RQ job still waiting in the busy queue
		frappe.db.set_value("Sync Backfill", name, "heartbeat_at", clock.now() - creation.STALL_SECONDS - 1)
		frappe.db.commit()
		creation.maintain()
		frappe.db.commit()
		for rq_job in pending:  # ... and only then does a worker reach it
			rq_job.delete()
			creation.create_jobs(**rq_job.kwargs["kwargs"])
			frappe.db.commit()
	backfill = stored(name)
	assert backfill.documents_selected, (
		f"4 creator RQ jobs ran, none created a chunk: {backfill.status}, "
		f"documents_selected={backfill.documents_selected}"
	)


def test_a_lost_job_of_a_canceled_backfill_is_still_given_a_retry(monkeypatch):
	"""The first review's fix "a failing job of a canceled backfill gets no retry" is in
	worker.record_failure only. Maintenance's mark_lost (the worker died, or the job overran its
	deadline) calls states.mark_failed(retryable=True) directly: a Started job of a Canceled
	backfill whose worker was lost gets a retry (due_at > 0, retry_count + 1), goes back to Waiting,
	is dispatched and claimed, and only then is canceled by the claim gate. Nothing is written, but
	a retry is spent on a job that must not come back, the dispatcher and a worker handle it again,
	and its real outcome (Failed: worker lost, which the roll-up's failure groups should show) is
	replaced by Canceled. Fix: mark_lost (or retry.plan) should refuse a retry when
	job_refusal(job) says the backfill was canceled."""
	from sync_tweaks.queue import maintenance, worker

	set_type(TYPE, max_retries=2, retry_delay=0, concurrency="None")
	sources(RUN + "lost", 1)
	name = start(RUN + "lost", dry_run=False)
	creation.create_jobs_until_done(name)
	frappe.db.rollback()
	[row] = frappe.get_all("Sync Job", filters={"sync_backfill": name}, fields=["name", "job_id"])
	job = worker.claim(row.name, row.job_id)
	assert job and job.status == "Started"
	act(name, "cancel", reason="stop")
	frappe.db.commit()
	frappe.db.set_value("Sync Job", row.name, "deadline_at", 1)  # its worker died long ago
	frappe.db.commit()
	for _ in range(3):
		maintenance.run_maintenance()
		frappe.db.commit()
		run_queued()
	frappe.db.rollback()
	status, retries, error = frappe.db.get_value(
		"Sync Job", row.name, ["status", "retry_count", "error_message"]
	)
	assert not retries and status == "Failed", (
		f"a lost job of a canceled backfill: {status} after {retries} retry(ies) ({error!r})"
	)
