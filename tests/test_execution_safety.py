"""Execution safety: timeouts that hold, the right user, one claim per delivery, whole-worker loss,
clocks, order across retries, controllers that commit, dry-run hooks inside a batch."""

import json
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import frappe
import pytest
from frappe.utils.background_jobs import get_redis_connection_without_auth
from sync_tweaks_tests.recorder import events

from sync_tweaks import doctor
from sync_tweaks.queue import clock, liveness, maintenance, states, timeouts, worker
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import act
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job
from tests.conftest import REAL_SITE
from tests.test_security import as_user
from tests.utils import (
	kill_whole_worker,
	make_source,
	realtime_statuses,
	run_queued,
	second_connection,
	set_type,
	statuses,
	wait_for,
	wait_for_status,
)

SINGLE, SLOW = "Test Single Sync", "Test Slow Sync"


def batch(*contexts, type_name=SINGLE, **params) -> list[str]:
	"""One committed job per context, on distinct sources; with batch size > 1 they share an RQ job."""
	sources = [make_source() for _ in contexts]  # each commits: make them before the jobs
	names = [
		enqueue_sync_job(type_name, source_doc=source, context=context, **params).name
		for source, context in zip(sources, contexts, strict=True)
	]
	frappe.db.commit()
	return names


def job(name: str):
	frappe.db.rollback()
	return frappe.get_doc("Sync Job", name)


# 1. timeouts


@pytest.mark.slow
def test_a_timeout_stops_a_controller_that_swallows_exceptions(site_conf, workers):
	site_conf(sync_job_batch_size=4)
	set_type(SINGLE, timeout=2)
	swallower, after = batch({"swallow": 8}, {})
	workers(1)
	wait_for_status([swallower, after], timeout=30)
	failed = job(swallower)
	assert (failed.status, failed.error_message) == ("Failed", "timed out after 2 s")
	assert failed.time_taken < 4, "stopped at its timeout, not when the controller gave up"
	assert failed.retry_after, "a timeout follows the retry policy"
	assert job(after).status == "Finished", "the rest of the batch runs"


@pytest.mark.slow
def test_a_controller_that_swallows_every_timeout_is_ended_and_recorded(site_conf, workers):
	site_conf(sync_job_batch_size=4)
	set_type(SINGLE, timeout=1, max_retries=0)
	stubborn, after = batch({"swallow_everything": 120}, {})
	workers(1)
	started = time.monotonic()

	def recovered():
		maintenance.run_maintenance()
		return statuses([stubborn])[stubborn] == "Failed"

	wait_for(recovered, timeout=60, interval=1, message="the stubborn job to be ended")
	assert time.monotonic() - started < 1 + timeouts.OVERRUN_SECONDS + 15
	assert job(stubborn).error_message.startswith("timed out after 1 s")
	wait_for(lambda: (maintenance.run_maintenance(), job(after).status == "Finished")[1], 60, interval=1)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_SITE, reason="SQLite has no row locks to wait on")
def test_a_timeout_inside_a_database_call_leaves_the_connection_usable(site_conf, workers):
	site_conf(sync_job_batch_size=4)
	set_type(SINGLE, timeout=2)
	locked = frappe.get_doc({"doctype": "Sync Test Target", "title": "locked"}).insert(
		ignore_permissions=True
	)
	frappe.db.commit()
	waiting, after = batch({"lock": locked.name}, {})
	frappe.db.sql("select name from `tabSync Test Target` where name=%s for update", locked.name)
	try:
		workers(1)
		result = wait_for_status_keeping_lock([waiting, after], timeout=30)
	finally:
		frappe.db.rollback()
	assert result[waiting] == ("Failed", "timed out after 2 s")
	assert result[after][0] == "Finished", "the batch goes on with a working connection"


def wait_for_status_keeping_lock(names, timeout):
	"""Poll job statuses on a second connection while this one keeps its row lock."""
	with second_connection() as connection:
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			with connection.cursor() as cursor:
				cursor.execute(
					"select name, status, error_message from `tabSync Job` where name in %s", (tuple(names),)
				)
				found = {name: (status, error) for name, status, error in cursor.fetchall()}
			if all(status in ("Finished", "Failed") for status, _ in found.values()):
				return found
			time.sleep(0.3)
	raise AssertionError(f"jobs did not end: {found}")


# 2. the right user


@pytest.mark.slow
def test_each_job_runs_as_its_creator_whoever_dispatches_it(site_conf, workers):
	site_conf(sync_job_batch_size=8)
	owners = ["sync-owner-a@example.com", "sync-owner-b@example.com"]
	names = []
	for owner in owners:
		with as_user(owner, ["System Manager"]):
			names.append(create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False).name)
			frappe.db.commit()
	with as_user("Guest"):
		created_by_guest = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False).name
		frappe.db.commit()
		for name in [*names, created_by_guest]:
			act(name, "start")  # as a portal form or webhook would: Guest's commit dispatches
		frappe.db.commit()
	assert len({frappe.db.get_value("Sync Job", n, "job_id") for n in names}) == 1, "one batch"
	workers(1)
	wait_for_status([*names, created_by_guest], timeout=60)
	ran_as = {e["job"]: e["user"] for e in events(event="after_start")}
	assert [ran_as[n] for n in names] == owners, "each job of the batch as its own creator"
	assert ran_as[created_by_guest] == "Administrator"
	target = frappe.db.get_value("Sync Job", names[0], "target_document_name")
	assert frappe.db.get_value("Sync Test Target", target, "owner") == owners[0]


def test_a_type_with_run_as_runs_every_job_as_that_user():
	with as_user("sync-runner@example.com", ["System Manager"]):
		pass
	set_type(SINGLE, run_as="sync-runner@example.com")
	with as_user("sync-owner-a@example.com", ["System Manager"]):
		name = enqueue_sync_job(SINGLE, source_doc=make_source()).name
		frappe.db.commit()
	run_queued()
	assert [e["user"] for e in events(name, "after_start")] == ["sync-runner@example.com"]


def test_only_a_system_manager_sets_run_as_and_never_guest():
	with as_user("sync-type-editor@example.com", ["System Manager"]):
		pass
	job_type = frappe.get_doc("Sync Job Type", SINGLE)
	job_type.run_as = "Guest"
	with pytest.raises(frappe.ValidationError):
		job_type.save()


# 3. one claim per delivery


def test_only_the_recorded_delivery_may_run_a_queued_job():
	name = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	recorded = frappe.db.get_value("Sync Job", name, "job_id")
	assert worker.run_batch([name], "sync-job-stale-delivery") == [None]
	assert statuses([name]) == {name: "Queued"}, "a stale delivery leaves the job to its own"
	assert worker.run_batch([name], recorded) == ["Finished"]


# 4. whole-worker loss


@pytest.mark.slow
def test_a_whole_worker_killed_mid_batch_is_recovered_within_the_lease(site_conf, workers):
	site_conf(sync_job_batch_size=3)
	set_type(SLOW, timeout=300)  # far beyond the test: only the lease can tell the worker died
	names = batch({"sleep_first_attempt": 120}, {}, {}, type_name=SLOW)
	(victim,) = workers(1)
	wait_for(lambda: [e for e in events(event="start") if e["job"] in names], 30, message="the batch started")
	dead_batch = frappe.db.get_value("Sync Job", names[0], "job_id")
	kill_whole_worker(victim)
	killed = time.monotonic()

	def recovered():
		maintenance.run_maintenance()
		held = frappe.get_all(
			"Sync Job", filters={"name": ["in", names], "job_id": dead_batch}, pluck="status"
		)
		return not {"Started", "Queued"} & set(held)

	# a private Redis younger than a lease cannot tell a dead holder from one that has not renewed yet
	young = max(0, liveness.LEASE_SECONDS + liveness.RENEW_SECONDS - redis_uptime())
	wait_for(recovered, timeout=young + liveness.LEASE_SECONDS + 20, interval=1, message="recovery")
	took = time.monotonic() - killed
	print(f"whole-worker kill: batch recovered {took:.1f} s after the kill (Redis young for {young} s)")
	assert took < young + liveness.LEASE_SECONDS + 10, f"recovered {took:.0f} s after the kill"
	workers(1)
	maintenance.run_maintenance()
	assert set(wait_for_status(names, timeout=120, wanted=["Finished"]).values()) == {"Finished"}


def redis_uptime() -> int:
	return frappe.cache().info("server")["uptime_in_seconds"]


# 5. clocks


class FrozenClock:
	"""Epoch time that tests move by hand; the site's wall clock follows in `zone`."""

	def __init__(self, monkeypatch, utc: datetime, zone: str):
		self.epoch = utc.replace(tzinfo=timezone.utc).timestamp()
		self.zone = ZoneInfo(zone)
		monkeypatch.setattr(clock, "now", lambda: self.epoch)
		monkeypatch.setattr(clock, "site_now", self.site_now)

	def site_now(self):
		return datetime.fromtimestamp(self.epoch, self.zone).replace(tzinfo=None)

	def advance(self, seconds: float):
		self.epoch += seconds


def started_job(timeout: int):
	name = enqueue_sync_job(SINGLE, source_doc=make_source(), timeout=timeout).name
	frappe.db.commit()
	doc = job(name)
	states.mark_started(doc)
	frappe.db.commit()
	return doc


def test_recovery_deadlines_do_not_move_at_spring_forward(monkeypatch):
	# 01:59:30 CET on the night clocks jump to 03:00 CEST
	frozen = FrozenClock(monkeypatch, datetime(2026, 3, 29, 0, 59, 30), "Europe/Berlin")
	doc = started_job(timeout=60)
	with liveness.lease(doc.job_id):
		frozen.advance(70)
		assert frozen.site_now().hour == 3, "the wall clock jumped an hour"
		assert doc.name not in maintenance.recover_started(), "70 s after start is not 3,670 s"
		frozen.advance(60 + 60)  # past timeout + grace
		assert doc.name in maintenance.recover_started()


def test_retries_are_due_on_time_at_fall_back(monkeypatch):
	# 02:58 CEST, two minutes before clocks go back to 02:00 CET
	frozen = FrozenClock(monkeypatch, datetime(2026, 10, 25, 0, 58), "Europe/Berlin")
	set_type(SINGLE, retry_delay=5)
	name = enqueue_sync_job(SINGLE, source_doc=make_source(), context={"fail": "error"}).name
	frappe.db.commit()
	run_queued()
	assert job(name).status == "Failed"
	frozen.advance(4 * 60)
	assert name not in maintenance.retry_due()
	frozen.advance(2 * 60)
	assert frozen.site_now().hour == 2, "the wall clock went back"
	assert name in maintenance.retry_due(), "due five minutes after the failure, not an hour later"


def test_a_started_job_with_a_live_lease_is_not_lost_before_its_deadline():
	doc = started_job(timeout=60)
	with liveness.lease(doc.job_id):
		assert doc.name not in maintenance.recover_started()
	assert doc.name in maintenance.recover_started(), "without its lease the process is gone"


# 6. order across retries


def test_an_identical_job_merges_into_one_waiting_for_its_retry():
	set_type(SINGLE, coalesce_duplicates=1, retry_delay=10)
	source = make_source()
	failed = enqueue_sync_job(SINGLE, source_doc=source, context={"fail": "until_retry"}).name
	frappe.db.commit()
	run_queued()
	assert job(failed).status == "Failed" and job(failed).due_at
	again = enqueue_sync_job(SINGLE, source_doc=source, context={"fail": "until_retry"})
	frappe.db.commit()
	assert again.name == failed and job(failed).coalesced_count == 1
	newer = enqueue_sync_job(SINGLE, source_doc=source).name
	frappe.db.commit()
	assert statuses([newer]) == {newer: "Waiting"}
	found = [f for f in doctor.run(SINGLE) if f.check == "behind_retry"]
	assert found and found[0].jobs == (failed,) and "retry is due at" in found[0].problem


# 7. controllers that commit


@pytest.mark.parametrize("context", [{"careless_commit": 1}, {"swallowed_commit": 1}])
def test_a_controller_that_commits_fails_without_retry(context):
	name = enqueue_sync_job(SINGLE, source_doc=make_source(), context={**context, "careless_write": 1}).name
	frappe.db.commit()
	run_queued()
	failed = job(name)
	assert failed.status == "Failed" and "must not commit" in failed.error_message
	assert not failed.retry_after and not failed.due_at, "a code bug is not retried"
	assert not frappe.db.exists("Sync Test Target", {"title": f"careless {name}"})


# 8. dry-run hooks inside a batch


@pytest.mark.slow
def test_dry_run_hooks_that_write_do_not_silence_the_rest_of_the_batch(site_conf, workers):
	site_conf(sync_job_batch_size=8)
	with realtime_statuses() as seen:
		dry = batch({"publish": 1, "careless_write": 1}, dry_run=1)[0]
		later = batch({}, {})
		source = frappe.db.get_value("Sync Job", later[0], "source_document_name")
		behind = enqueue_sync_job(SINGLE, source_document_name=source).name
		frappe.db.commit()
		workers(1)
		wait_for_status([dry, *later, behind], timeout=60)
	assert job(dry).status == "Skipped"
	for name in later:
		assert seen.get(name, set()) >= {"Started", "Finished"}, (name, seen)
	assert job(behind).status in ("Finished", "Skipped"), "the line behind a batch job moved on at once"
