"""Races and crossed processes in the queue machinery, found by an adversarial review: each test
reproduced a defect before its fix. In-process: races are interleaved by hand, other processes are
simulated."""

import fnmatch
import time

import frappe
import pytest
import redis

from sync_tweaks.engine.status import S
from sync_tweaks.queue import after_commit, dispatcher, liveness, maintenance, slots, worker
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import make_source, set_type, statuses

SINGLE, SLOW = "Test Single Sync", "Test Slow Sync"


def job(name: str):
	frappe.db.rollback()
	return frappe.get_doc("Sync Job", name)


def old_enough_redis():
	"""is_alive() answers None while the cache Redis is younger than a lease: wait until it can tell."""
	needed = liveness.LEASE_SECONDS + liveness.RENEW_SECONDS + 1
	while frappe.cache().info("server")["uptime_in_seconds"] < needed:
		time.sleep(1)


def frappe15_clear_cache():
	"""What Frappe 15's `frappe.clear_cache()` does to Redis (frappe/__init__.py:1014-1019): delete every
	key of the site except the `persistent_cache_keys` hooks. It runs on
	`bench migrate`, `bench clear-cache`, rename_doc, saving a Role / Custom Field / Print Settings ..."""
	cache = frappe.cache()
	keys = {k.decode() if isinstance(k, bytes) else k for k in cache.keys(cache.make_key("*"))}
	persistent = ["changelog-*", "insert_queue_for_*", "recorder-*", "global_search_queue"]
	persistent += [key + "*" for key in frappe.get_hooks("persistent_cache_keys")]
	prefixed = [cache.make_key(p) for p in persistent]
	prefixed = [p.decode() if isinstance(p, bytes) else p for p in prefixed]
	keep = {k for k in keys for p in prefixed if fnmatch.fnmatch(k, p)}
	for key in keys - keep:
		cache.delete(key)


class OtherProcess:
	"""Run code as another process would, in the middle of a controller: the worker's commit guard
	is lifted meanwhile (the other process commits its own transactions)."""

	def __enter__(self):
		self.guard = getattr(frappe.local, "sync_tweaks_commit_guard", None)
		if self.guard:
			self.guard.active = False
		# nor does it hold back its dispatches as the worker's batch does
		self.held = frappe.flags.pop(after_commit.HELD, None)
		return self

	def __exit__(self, *exc):
		if self.held is not None:
			frappe.flags[after_commit.HELD] = self.held
		if self.guard:
			self.guard.active = True
			self.guard.arm()


# --- F1: a superseded run overwrites the re-run of its own job -------------------------------------


def test_a_superseded_run_does_not_overwrite_the_rerun_of_its_job(monkeypatch):
	"""Maintenance declares a running job lost (its lease vanished, see F2/F3), retries it, and a second
	worker starts it again. When the first run then ends, record_outcome only checks `status ==
	Started` (worker.py:111), so the *first* (superseded) run's outcome is written, the slot held by
	the second run is released, and the second, legitimate run is later discarded as superseded."""
	set_type(SINGLE, retry_delay=0)
	source = make_source()
	name = enqueue_sync_job(SINGLE, source_doc=source).name
	behind = enqueue_sync_job(SINGLE, source_doc=source).name  # same key: waits behind
	frappe.db.commit()
	first_delivery = frappe.db.get_value("Sync Job", name, "job_id")
	assert first_delivery and statuses([name, behind]) == {name: "Queued", behind: "Waiting"}

	from sync_tweaks import apply

	real_run = apply.run
	second = {}

	def first_run_is_slow(sync_job):
		if sync_job.name == name and not second:
			with OtherProcess():
				# the minute's maintenance in another process: the lease is gone, the job is lost
				maintenance.mark_lost(name, first_delivery, "worker lost: its process stopped")
				frappe.db.commit()
				maintenance.retry_due()
				frappe.db.commit()  # -> Waiting, dispatched after commit -> Queued for a new delivery
				second["delivery"] = frappe.db.get_value("Sync Job", name, "job_id")
				assert second["delivery"] and second["delivery"] != first_delivery
				# a second worker claims the re-queued job and is now running it
				assert worker.claim(name, second["delivery"])
		return real_run(sync_job)

	monkeypatch.setattr(apply, "run", first_run_is_slow)
	result = worker.run_batch([name], first_delivery)
	frappe.db.rollback()
	now = frappe.db.get_value("Sync Job", name, ["status", "job_id"], as_dict=True)
	assert result == [None], (
		f"the superseded first run recorded its outcome over the second run: {result}, job is now {now}; "
		f"the key's next job is {statuses([behind])[behind]} while the second run still runs"
	)


# --- F2: frappe.clear_cache() wipes every lease: running jobs look dead ---------------------------


def test_clearing_the_site_cache_does_not_make_a_running_job_look_dead():
	old_enough_redis()
	name = enqueue_sync_job(SINGLE, source_doc=make_source(), timeout=300).name
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", name, "job_id")
	with liveness.lease(delivery):  # the work horse is alive and renewing every 5 s
		assert worker.claim(name, delivery)
		frappe15_clear_cache()  # e.g. someone renames a document, or runs `bench clear-cache`
		lost = maintenance.recover_started()  # the minute's maintenance runs before the next renewal
	assert name not in lost, "a running job was declared 'worker lost' because the cache was cleared"


# --- F3: a foreground run of a Queued job shares (and deletes) its batch's lease ------------------


def test_a_foreground_run_of_a_queued_job_does_not_end_its_batch_mates_lease(site_conf):
	"""`bench sync-job run NAME` on a Queued job runs it with the job's own RQ delivery id
	(commands.py:285-287). The worker running the rest of that batch holds the lease of the same
	delivery; when the CLI's run_batch ends it deletes that lease (liveness.py:43) and maintenance
	declares the batch mate the worker is still running 'worker lost'."""
	old_enough_redis()
	from sync_tweaks.commands import take_for_foreground

	site_conf(sync_job_batch_size=4)
	frappe.cache().delete_value("sync_tweaks:workers:default")
	monkey_one_worker = dispatcher.worker_count
	dispatcher.worker_count = lambda queue: 1
	try:
		sources = [make_source(), make_source()]
		names = [enqueue_sync_job(SINGLE, source_doc=s).name for s in sources]
		frappe.db.commit()
	finally:
		dispatcher.worker_count = monkey_one_worker
	delivery = frappe.db.get_value("Sync Job", names[0], "job_id")
	assert delivery == frappe.db.get_value("Sync Job", names[1], "job_id"), "one batch"

	with liveness.lease(delivery):  # the RQ work horse, running the batch
		assert worker.claim(names[1], delivery)  # ... is in the middle of names[1]
		# meanwhile an operator runs the other job of the batch from the CLI
		own = take_for_foreground(names[0])
		assert own != delivery, "the CLI runs the job under a delivery (and lease) of its own"
		assert worker.run_batch([names[0]], own) == ["Finished"]
		lost = maintenance.recover_started()
	assert names[1] not in lost, "the worker's running job was declared lost when the CLI run ended"
	assert worker.claim(names[0], delivery) is None, "the batch's worker skips the job the CLI took"


# --- F4: an overrun mark outlives its run and kills every retry for an hour -----------------------


def test_an_overrun_mark_does_not_kill_the_retry_of_the_job(monkeypatch):
	"""end_process() leaves `sync_tweaks:overrun:<job>` for 3,600 s (worker.py:199); maintenance checks
	it first, by job name only (maintenance.py:55) and never deletes it. The job's retry, running
	fine under a live lease, is declared lost at the next minute, and so is every later retry."""
	set_type(SINGLE, retry_delay=0, max_retries=3)
	name = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", name, "job_id")
	assert worker.claim(name, delivery)
	# the controller swallowed every timeout: end_process marks the job and ends the work horse
	frappe.cache().set(worker.overrun_mark(delivery), name, ex=3600)
	assert name in maintenance.recover_started()
	frappe.db.commit()
	maintenance.retry_due()
	frappe.db.commit()  # the retry is dispatched
	retry_delivery = frappe.db.get_value("Sync Job", name, "job_id")
	assert retry_delivery and retry_delivery != delivery
	with liveness.lease(retry_delivery):  # the retry runs, healthy, in a live process
		assert worker.claim(name, retry_delivery)
		lost = maintenance.recover_started()
	assert name not in lost, "the healthy retry was declared timed out by the previous run's mark"


# --- F5: one Started job of a deleted type aborts every maintenance run ---------------------------


@pytest.fixture
def doomed_type():
	name = "Review Doomed Sync"
	frappe.db.delete("Sync Job", {"sync_job_type": name})
	frappe.db.delete("Sync Job Type", {"name": name})
	frappe.get_doc(
		{
			"doctype": "Sync Job Type",
			"sync_job_type_name": name,
			"source_document_type": "Sync Test Source",
			"target_document_type": "Sync Test Target",
			"module": "Sync Tweaks Tests",
			"is_standard": "No",
			"controller": "sync_tweaks_tests.sync_tweaks_tests.sync_job_type.test_slow_sync.test_slow_sync",
			"timeout": 60,
			"max_retries": 2,
			"retry_delay": 0,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	yield name
	frappe.db.rollback()
	frappe.db.delete("Sync Job", {"sync_job_type": name})
	frappe.db.delete("Sync Job Type", {"name": name})
	frappe.db.commit()


def test_a_started_job_of_a_deleted_type_does_not_block_all_maintenance(doomed_type):
	"""A type with open jobs cannot be deleted; one removed behind Frappe's back must not stop
	maintenance: each step guards each job, and one step failing never skips the others."""
	old_enough_redis()
	set_type(SINGLE, retry_delay=0)
	doomed = enqueue_sync_job(doomed_type, source_doc=make_source(), context={"x": 1}).name
	healthy = enqueue_sync_job(SINGLE, source_doc=make_source(), context={"fail": "until_retry"}).name
	frappe.db.commit()
	assert worker.run_batch([healthy], frappe.db.get_value("Sync Job", healthy, "job_id")) == ["Failed"]
	assert worker.claim(doomed, frappe.db.get_value("Sync Job", doomed, "job_id"))
	frappe.set_user("Administrator")
	with pytest.raises(frappe.LinkExistsError):
		frappe.delete_doc("Sync Job Type", doomed_type, ignore_permissions=True)  # while its job runs
	vanish(doomed_type)  # removed behind Frappe's back (SQL, a restore): maintenance must cope
	# the doomed job's worker dies (no lease): maintenance must recover it and go on with the rest
	try:
		maintenance.run_maintenance()
	except Exception as e:  # noqa: BLE001
		pytest.fail(f"run_maintenance raised {e!r}: the retry of {healthy} and all other steps were skipped")
	assert statuses([healthy])[healthy] != "Failed", "the due retry of an unrelated job was not made"


def test_a_queued_job_of_a_deleted_type_does_not_kill_its_batch_mates(doomed_type, site_conf):
	"""A job whose type vanished fails without retry at its claim; its batch mates run."""
	doomed = enqueue_sync_job(doomed_type, source_doc=make_source(), context={"x": 1}).name
	healthy = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	vanish(doomed_type)
	delivery = frappe.db.get_value("Sync Job", doomed, "job_id")
	try:
		result = worker.run_batch([doomed, healthy], delivery)
	except Exception as e:  # noqa: BLE001
		pytest.fail(f"the batch died on the job of a deleted type: {e!r}; {statuses([doomed, healthy])}")
	assert result[0] in ("Failed", None)
	assert statuses([doomed])[doomed] == "Failed" and not job(doomed).due_at, "failed, without retry"


def vanish(job_type: str):
	frappe.db.delete("Sync Job Type", {"name": job_type})
	frappe.db.commit()
	frappe.clear_document_cache("Sync Job Type", job_type)


# --- F6: a dispatch failure inside after-commit drops the caller's other after-commit work ---------


def test_a_failed_dispatch_does_not_drop_the_callers_other_after_commit_callbacks(monkeypatch):
	"""after_commit.run() runs inside the caller's commit, with the caller's later after-commit
	callbacks still queued. On a Redis error (cache Redis down, queue Redis up) run_dispatch does
	frappe.db.rollback() (dispatcher.py:32), which resets after_commit: the caller's
	frappe.enqueue(..., enqueue_after_commit=True), realtime flush, cache clears ... never run."""

	def redis_down(*args, **kwargs):
		raise redis.exceptions.ConnectionError("cache Redis is down")

	monkeypatch.setattr(slots, "acquire_many", redis_down)
	source = make_source()
	enqueue_sync_job(SINGLE, source_doc=source)
	ran = []
	frappe.db.after_commit.add(lambda: ran.append("the caller's own after-commit work"))
	frappe.db.commit()  # must not raise, and must not swallow the caller's callback
	assert ran, "the caller's after-commit callback was dropped by the dispatcher's rollback"


# --- F7: a commit that fails leaves the dispatch request set: later commits never dispatch ----------


def test_a_failed_commit_does_not_stop_later_commits_from_dispatching():
	"""request() registers `forget` on after_rollback, but Frappe's commit() resets after_rollback
	before running before_commit (database.py:1041). A commit that fails there (a before_commit hook
	that raises, e.g. a validation of another app) leaves frappe.flags.sync_tweaks_after_commit set
	after the rollback, and every later request() in the process thinks `run` is registered: new jobs
	wait for the minute's maintenance (or forever on a dormant site)."""
	enqueue_sync_job(SINGLE, source_doc=make_source())

	def refuse():
		raise frappe.ValidationError("another app refuses this commit")

	frappe.db.before_commit.add(refuse)
	with pytest.raises(frappe.ValidationError):
		frappe.db.commit()
	frappe.db.rollback()
	leaked = frappe.flags.pop(after_commit.PENDING, None)  # do not poison the tests that follow
	assert leaked is None, "the dispatch request outlived its transaction"


def test_after_a_failed_commit_the_next_job_is_still_dispatched_at_its_commit():
	enqueue_sync_job(SINGLE, source_doc=make_source())
	frappe.db.before_commit.add(lambda: (_ for _ in ()).throw(frappe.ValidationError("refused")))
	with pytest.raises(frappe.ValidationError):
		frappe.db.commit()
	frappe.db.rollback()
	try:
		later = enqueue_sync_job(SINGLE, source_doc=make_source()).name
		frappe.db.commit()
		assert statuses([later])[later] == S.QUEUED.value, "the job waits for the scheduler"
	finally:
		frappe.flags.pop(after_commit.PENDING, None)  # do not poison the tests that follow


# --- F8: a plain document save rewrites status: a canceled job runs again -------------------------


def test_saving_a_sync_job_cannot_change_its_status():
	"""`status`, `job_id`, `next_in_key` ... are read_only in the DocType, but Frappe 15 does not enforce
	read_only on save, and SyncJob.validate does not refuse a status change (sync_job.py:115). Anyone with
	write (the same right the Cancel button needs) can PUT /api/resource/Sync Job/<name> {"status":
	"Queued"} on a Canceled job: maintenance finds a Queued job without an RQ job and runs it."""
	from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import act

	name = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	act(name, "cancel_sync", "do not run this")
	frappe.db.commit()
	doc = job(name)
	doc.status = "Queued"
	try:
		doc.save()
		frappe.db.commit()
	except frappe.ValidationError:
		return  # refused: fine
	maintenance.run_maintenance()
	assert statuses([name])[name] == "Canceled", "a canceled job was put back in line by a plain save"


def test_a_worker_killed_between_taking_an_rq_job_and_starting_it_loses_nothing():
	"""RQ pops a job id off its queue in the worker, and marks the job started only in the work horse:
	a worker SIGKILLed in between leaves the RQ job "queued" in no queue (found by the chaos test)."""
	from frappe.utils.background_jobs import get_job, get_queue

	name = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	delivery = frappe.db.get_value("Sync Job", name, "job_id")
	rq_job = get_job(delivery)
	queue = get_queue("default")
	queue.connection.lrem(queue.key, 0, rq_job.id)  # taken off the queue; the worker dies right there
	assert rq_job.get_status() == "queued" and rq_job.get_position() is None
	frappe.db.set_value("Sync Job", name, "deadline_at", 1)  # past its push grace
	frappe.db.commit()
	maintenance.run_maintenance()
	again = frappe.db.get_value("Sync Job", name, "job_id")
	assert again != delivery and statuses([name]) == {name: "Queued"}, "pushed again under a new RQ job"
	assert get_job(again).get_position() is not None
