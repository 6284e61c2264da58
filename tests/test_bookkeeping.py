"""The per-job bookkeeping made lean for throughput (#14): each shortcut keeps what the Frappe call it
replaces promised. Each test states the promise it checks."""

import frappe
import pytest
from rq.timeouts import JobTimeoutException

from sync_tweaks import apply
from sync_tweaks.queue import dispatcher, gates, liveness, maintenance, states, worker
from sync_tweaks.utils.sync_job import create_sync_job
from tests.utils import make_source, run_queued, statuses

SINGLE = "Test Single Sync"


def _fields(doc) -> dict:
	return {key: value for key, value in doc.as_dict().items() if not key.startswith("_")}


def test_a_claim_loads_the_job_frappe_would_load_and_locks_it():
	"""The claim reads the job in one plain statement; the document is the one `frappe.get_doc`
	returns (every field, the Sync Job controller), and a missing job is None."""
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False, context={"a": 1})
	frappe.db.commit()
	loaded = worker.load_locked(job.name)
	frappe.db.rollback()
	assert type(loaded) is type(frappe.get_doc("Sync Job", job.name))
	assert _fields(loaded) == _fields(frappe.get_doc("Sync Job", job.name))
	assert loaded.get_context() == {"a": 1}
	assert states.is_frappes_db_set(loaded)  # so its outcomes take the lean write
	assert worker.load_locked("no-such-sync-job") is None
	frappe.db.rollback()


def test_an_outcome_is_stored_as_frappe_would_store_it():
	"""An outcome written in one plain statement reads back as written: its status, its times, the
	user it ran as in `modified_by`, and nothing left in the document cache from before."""
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	job.start()
	frappe.db.commit()
	assert frappe.get_cached_doc("Sync Job", job.name).status == "Queued"  # now in the cache
	run_queued()
	stored = frappe.get_doc("Sync Job", job.name)
	assert stored.status == "Finished"
	assert stored.ended_at and stored.time_taken is not None
	assert stored.modified_by == "Administrator"
	assert frappe.get_cached_doc("Sync Job", job.name).status == "Finished"


def _cached_status(name: str) -> str:
	"""The job's status as `frappe.get_cached_doc` gives it to a process without a copy of its own."""
	if isinstance(getattr(frappe.local, "cache", None), dict):
		frappe.local.cache.clear()
	return frappe.get_cached_doc("Sync Job", name).status


def test_a_cached_job_follows_its_commits_and_forgets_a_rolled_back_change():
	"""A Sync Job kept in Frappe's document cache (by a site's own code) shows every committed status
	to other processes (Frappe deletes its copy at once, and again after the commit or rollback); a copy cached
	inside a transaction that rolled back goes with it."""
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	assert _cached_status(job.name) == "Pending"
	job.reload()
	job.start()
	frappe.db.commit()
	assert _cached_status(job.name) == "Queued"
	run_queued()
	assert _cached_status(job.name) == "Finished"

	other = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	states.cancel(frappe.get_doc("Sync Job", other.name), "changed my mind")
	assert frappe.get_cached_doc("Sync Job", other.name).status == "Canceled"  # cached, uncommitted
	frappe.db.rollback()
	assert _cached_status(other.name) == "Pending"


def test_a_dispatch_pass_counts_the_heads_it_took_against_the_queue_cap(site_conf, monkeypatch):
	"""RQ never holds more than `sync_job_max_queued` sync jobs of a queue: when a pass queues the
	head of a freed line, the fill pass that follows has that much less room."""
	site_conf(sync_job_max_queued=2, sync_job_batch_size=1)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	shared = make_source()
	first = create_sync_job(SINGLE, source_doc=shared, queue_on_insert=False)
	behind = create_sync_job(SINGLE, source_doc=shared, queue_on_insert=False)
	others = [create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False) for _ in range(3)]
	frappe.db.commit()
	for job in (first, behind, *others):
		job.reload()
		job.start()  # `behind` waits behind `first`: the pass serves their key first, then fills
	frappe.db.commit()
	names = [first.name, behind.name, *(job.name for job in others)]
	found = statuses(names)
	assert found[first.name] == "Queued" and found[behind.name] == "Waiting", found
	assert list(found.values()).count("Queued") == 2, found


def test_a_dispatch_pass_reads_the_paused_types_once(monkeypatch):
	"""One pass reads which types are paused once (its transaction would see the same rows again)."""
	reads = []
	real = gates.paused_types
	monkeypatch.setattr(gates, "paused_types", lambda: reads.append(1) or real())
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	job.start()
	frappe.db.commit()
	assert statuses([job.name])[job.name] == "Queued"
	assert len(reads) == 1, reads


def test_a_dispatch_pass_with_nothing_waiting_costs_one_statement(monkeypatch):
	"""The usual pass when a job ends: one statement finds that no queue has a Waiting job."""
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	statements = []
	real = frappe.db.sql
	monkeypatch.setattr(
		frappe.db, "sql", lambda query, *a, **k: statements.append(query) or real(query, *a, **k)
	)
	assert dispatcher.dispatch() == []
	assert len(statements) == 1, statements
	statements.clear()
	job.start()
	frappe.db.commit()
	assert statuses([job.name])[job.name] == "Queued", "the same probe finds the queue of a Waiting job"
	probes = [query for query in statements if "status=%(waiting)s" in query and "limit 1" in query]
	assert len(probes) == 1, probes


def test_the_claimed_job_keeps_for_update_like_get_doc():
	"""A controller's `job.reload()` re-reads the claimed row under lock, as after `frappe.get_doc(...,
	for_update=True)`."""
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	job.start()
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", job.name, "job_id")
	claimed = worker.claim(job.name, delivery)
	try:
		assert claimed.flags.for_update
	finally:
		frappe.db.rollback()


def test_a_sync_job_db_set_of_the_site_sees_every_status_change(monkeypatch):
	"""A site that overrides Sync Job's `db_set` (override_doctype_class) sees Waiting and every
	outcome (Queued and Started are one statement per batch): the lean write is used only while
	db_set is Frappe's own."""
	from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import SyncJob

	calls = []
	real = SyncJob.db_set

	def audited(self, *args, **kwargs):
		calls.append(dict(args[0]) if args and isinstance(args[0], dict) else args)
		return real(self, *args, **kwargs)

	monkeypatch.setattr(SyncJob, "db_set", audited)
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	job.start()
	frappe.db.commit()
	run_queued()
	assert statuses([job.name])[job.name] == "Finished"
	assert [call.get("status") for call in calls if isinstance(call, dict)] == ["Waiting", "Finished"]


# --- why a claim does not ride on the previous outcome's commit (built, reviewed, taken out) ----


def _batch(site_conf, monkeypatch, count: int) -> tuple[list[str], str]:
	site_conf(sync_job_batch_size=count)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	names = [
		create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False).name for _ in range(count)
	]
	frappe.db.commit()
	for name in names:
		frappe.get_doc("Sync Job", name).start()
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", names[0], "job_id")
	assert {frappe.db.get_value("Sync Job", name, "job_id") for name in names} == {delivery}
	return names, delivery


def test_an_alarm_in_the_outcomes_after_commit_work_does_not_leave_the_next_job_started(
	site_conf, monkeypatch
):
	"""RQ's alarm (or a SIGKILL, or any error) during A's after-commit work: B, which never ran, is
	still Queued, so recovery puts it back in line without counting a retry."""
	(a, b), delivery = _batch(site_conf, monkeypatch, 2)
	real_run = apply.run
	ran = []

	def run(sync_job):
		ran.append(sync_job.name)
		if sync_job.name == a:

			def alarm():  # where RQ's alarm lands when it fires during A's after-commit work
				raise JobTimeoutException("Task exceeded maximum timeout value")

			frappe.db.after_commit.add(alarm)
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", run)
	with pytest.raises(JobTimeoutException):
		worker.run_batch([a, b], delivery)
	monkeypatch.undo()
	assert ran == [a]
	assert statuses([a, b]) == {a: "Finished", b: "Queued"}
	monkeypatch.setattr(liveness, "is_alive", lambda job_id: False)  # the batch's lease is gone
	maintenance.recover_started()
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", b, "status") != "Failed"


def test_a_job_recovery_took_over_while_the_previous_job_ended_does_not_run(site_conf, monkeypatch):
	"""Should recovery take B over while A's after-commit work runs, this batch does not run B's
	controller (its retry would run it again, maybe at the same time on another worker)."""
	(a, b), delivery = _batch(site_conf, monkeypatch, 2)
	real_run = apply.run
	status_when_run = {}

	def run(sync_job):
		status_when_run[sync_job.name] = frappe.db.sql(
			"select status from `tabSync Job` where name=%s", sync_job.name
		)[0][0]
		if sync_job.name == a:

			def recovery_meanwhile():  # maintenance in another process, during A's after-commit work
				maintenance.mark_lost(b, delivery, "worker lost: no result after start")
				frappe.db.commit()

			frappe.db.after_commit.add(recovery_meanwhile)
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", run)
	worker.run_jobs([a, b], delivery)
	assert status_when_run.get(b) in (None, "Started"), status_when_run


def test_an_apps_patch_of_documents_db_set_sees_every_outcome_whenever_it_was_applied(monkeypatch):
	"""An app that patches Document.db_set (an audit trail), before or after sync_tweaks loaded,
	still sees Waiting and the outcome of a Sync Job."""
	from frappe.model.document import Document

	calls = []
	real = Document.db_set

	def audited(self, *args, **kwargs):
		calls.append(dict(args[0]) if args and isinstance(args[0], dict) else args)
		return real(self, *args, **kwargs)

	monkeypatch.setattr(Document, "db_set", audited)
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	job.start()
	frappe.db.commit()
	run_queued()
	assert statuses([job.name])[job.name] == "Finished"
	assert [call["status"] for call in calls if isinstance(call, dict) and "status" in call] == [
		"Waiting",
		"Finished",
	]


def _events_while(block) -> list[dict]:
	"""The realtime envelopes published on Frappe's `events` channel while `block()` runs."""
	import json

	from frappe.utils.background_jobs import get_redis_connection_without_auth

	pubsub = get_redis_connection_without_auth().pubsub()
	pubsub.subscribe("events")
	try:
		pubsub.get_message(timeout=1)  # the subscription's confirmation
		block()
		sent = []
		while message := pubsub.get_message(timeout=0.5):
			if message["type"] == "message":
				sent.append(json.loads(message["data"]))
		return sent
	finally:
		pubsub.close()


def test_a_jobs_realtime_messages_are_frappes_and_only_follow_a_commit():
	"""A job's messages go out together after each commit, in the envelope Frappe's
	`publish_realtime` sends (event, message, room, site), to the rooms Desk's forms and lists join;
	a rolled-back change sends nothing."""
	source = make_source()
	job = create_sync_job(SINGLE, source_doc=source, queue_on_insert=False)
	frappe.db.commit()

	def rolled_back():
		loaded = frappe.get_doc("Sync Job", job.name)
		states.cancel(loaded, "changed my mind")
		frappe.db.rollback()

	assert [e for e in _events_while(rolled_back) if e["message"].get("name") == job.name] == []

	def run():
		job.reload()
		job.start()
		frappe.db.commit()
		run_queued()

	sent = _events_while(run)
	ours = [e for e in sent if e["event"] == "sync_job_status" and e["message"]["name"] == job.name]
	assert [e["message"]["status"] for e in ours] == ["Waiting", "Queued", "Started", "Finished"], sent
	assert {e["room"] for e in ours} == {f"doc:Sync Job/{job.name}"}
	assert {e["namespace"] for e in ours} == {frappe.local.site}
	lists = [e for e in sent if e["event"] == "list_update" and e["message"].get("name") == job.name]
	assert len(lists) == 4 and {e["room"] for e in lists} == {"doctype:Sync Job"}
	lineage = [e for e in sent if e["event"] == "sync_lineage"]
	assert {"doctype": "Sync Test Source", "name": source.name} in [e["message"] for e in lineage]
	assert frappe.db.get_value("Sync Job", job.name, "status") == "Finished"


def test_a_success_resets_the_circuit_breaker_only_once_committed(monkeypatch):
	"""A run that ended other than Failed resets its type's count of consecutive failures after its
	commit; rolled back, the count stays."""
	from sync_tweaks.queue import breaker

	key = breaker._key(SINGLE)
	frappe.cache().set(key, 2)
	job = frappe._dict(sync_job_type=SINGLE)
	breaker.record_run(job, failed=False)
	frappe.db.rollback()
	assert breaker.consecutive_failures(SINGLE) == 2
	breaker.record_run(job, failed=False)
	frappe.db.commit()
	assert breaker.consecutive_failures(SINGLE) == 0


def test_a_rollback_after_the_dispatch_commit_keeps_what_that_commit_asked_for():
	"""After commit, the dispatch commits and a parent's check then rolls back (its children are not
	all done): the dispatch's own after-commit work (Desk hearing its job Queued) still happens."""
	from sync_tweaks.queue import after_commit
	from sync_tweaks.utils.sync_job import enqueue_sync_job

	box = {}

	def enqueue():
		box["name"] = enqueue_sync_job(SINGLE, source_doc=make_source()).name
		after_commit.request(parents=["no-such-parent"])  # the path of a parent with open children
		frappe.db.commit()

	sent = _events_while(enqueue)
	assert frappe.db.get_value("Sync Job", box["name"], "status") == "Queued"
	queued = [
		e
		for e in sent
		if e["event"] == "sync_job_status"
		and e["message"] == {**e["message"], "name": box["name"], "status": "Queued"}
	]
	assert len(queued) == 1, sent
