"""Drain mode: under a backlog one RQ job keeps taking ready jobs, and every promise still holds."""

import random
import time
from collections import Counter, defaultdict

import frappe
import pytest
from sync_tweaks_tests.recorder import events

from sync_tweaks.queue import dispatcher, maintenance
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import kill_whole_worker, make_source, set_type, statuses, wait_for, wait_for_status

SLOW = "Test Slow Sync"


def backlog(count: int, sources=None, **context) -> list[str]:
	"""`count` jobs of the slow (recording) type, on distinct sources unless `sources` is given."""
	sources = sources or [make_source() for _ in range(count)]
	names = [
		enqueue_sync_job(SLOW, source_doc=sources[i % len(sources)], context={"seq": i, **context}).name
		for i in range(count)
	]
	frappe.db.commit()
	return names


def deliveries(names) -> Counter:
	"""How many of `names` each RQ job ran (the delivery recorded on each job)."""
	return Counter(frappe.db.get_value("Sync Job", name, "job_id") for name in names)


@pytest.mark.parametrize("drain_seconds", [10, 0])
def test_one_rq_job_drains_the_backlog_it_finds(worker_conf, workers, drain_seconds):
	"""RQ holds one batch of 3 of 24 waiting jobs: the worker's RQ job drains what waits (or, with
	drain mode off, each RQ job runs its batch of 3 and no more)."""
	worker_conf(sync_job_batch_size=3, sync_job_max_queued=3, sync_job_drain_seconds=drain_seconds)
	names = backlog(24)
	assert list(statuses(names).values()).count("Queued") == 3, "RQ holds one batch, the rest waits"
	workers(1)
	assert set(wait_for_status(names, wanted=["Finished"], timeout=120).values()) == {"Finished"}
	per_delivery = deliveries(names)
	if drain_seconds:
		assert len(per_delivery) <= 3, f"a few RQ jobs drained all 24: {per_delivery}"
		assert max(per_delivery.values()) >= 15, per_delivery
	else:
		assert len(per_delivery) == 8 and set(per_delivery.values()) == {3}, per_delivery
	ended = Counter(e["job"] for e in events(event="end") if e["job"] in names)
	assert ended == Counter(names), "each job ran once"


@pytest.mark.parametrize("drain_seconds", [10, 0])
def test_in_drain_mode_rq_holds_a_batch_per_worker_and_one_more(worker_conf, workers, drain_seconds):
	"""In drain mode RQ holds a batch per worker plus one, not `sync_job_max_queued`: 40 waiting jobs
	in batches of 3 reach one worker in a few RQ jobs (each a fresh work horse), not in 14. With
	drain mode off the cap is `sync_job_max_queued`, as before."""
	worker_conf(sync_job_batch_size=3, sync_job_max_queued=200, sync_job_drain_seconds=drain_seconds)
	names = backlog(40)
	queued = list(statuses(names).values()).count("Queued")
	assert queued == (6 if drain_seconds else 40), "no worker yet: counted as one"
	workers(1)
	assert set(wait_for_status(names, wanted=["Finished"], timeout=120).values()) == {"Finished"}
	per_delivery = deliveries(names)
	if drain_seconds:
		assert len(per_delivery) <= 3, f"the worker drained the backlog: {per_delivery}"
	else:
		assert len(per_delivery) == 14, per_delivery
	ended = Counter(e["job"] for e in events(event="end") if e["job"] in names)
	assert ended == Counter(names), "each job ran once"


def test_a_drain_ends_at_its_time_budget(worker_conf, workers):
	"""With a 1 s budget, a worker gives its RQ job back after about a second of draining."""
	worker_conf(sync_job_batch_size=2, sync_job_max_queued=2, sync_job_drain_seconds=1)
	names = backlog(16, sleep=0.25)
	workers(1)
	wait_for_status(names, wanted=["Finished"], timeout=120)
	spans = defaultdict(list)
	for name in names:
		job = frappe.db.get_value("Sync Job", name, ["job_id", "started_at", "ended_at"], as_dict=True)
		spans[job.job_id].append(job)
	assert len(spans) >= 3, f"16 jobs of 0.25 s do not fit in one 1 s drain: {dict(spans)}"
	for job_id, jobs in spans.items():
		span = (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()
		# the budget, plus the group that started just before it ended (2 × 0.25 s), plus slack
		assert span < 1 + 0.5 + 1.5, f"{job_id} drained for {span:.2f} s"


def test_a_drain_keeps_each_key_in_creation_order_across_two_workers(worker_conf, workers):
	"""Two draining workers, 6 sources × 5 jobs: per source, jobs run one at a time in creation order."""
	worker_conf(sync_job_batch_size=4, sync_job_max_queued=4)
	sources = [make_source() for _ in range(6)]
	names = backlog(30, sources=sources, sleep=0.05)
	workers(2)
	assert set(wait_for_status(names, wanted=["Finished"], timeout=120).values()) == {"Finished"}
	runs = defaultdict(dict)
	for event in events():
		if event["job"] in names:
			runs[event["job"]][event["event"]] = event
	by_source = defaultdict(list)
	for name in names:  # names are in creation order
		by_source[runs[name]["start"]["source"]].append(runs[name])
	for source_runs in by_source.values():
		starts = [run["start"]["at"] for run in source_runs]
		assert starts == sorted(starts), "same-source jobs start in creation order"
		for earlier, later in zip(source_runs, source_runs[1:], strict=False):
			assert earlier["end"]["at"] <= later["start"]["at"], "same-source jobs never overlap"


def test_a_drain_gives_the_worker_back_to_a_queue_it_serves_first(worker_conf, workers):
	"""A worker serving `short` before `default` stops draining `default` once `short` has work."""
	worker_conf(sync_job_batch_size=2, sync_job_max_queued=2, sync_job_drain_seconds=60)
	names = backlog(40, sleep=0.2)
	workers(1, queues="short,default")
	wait_for(
		lambda: len([e for e in events(event="end") if e["job"] in names]) >= 4,
		timeout=60,
		message="the drain is under way",
	)
	frappe.enqueue("sync_tweaks_tests.recorder.bare_job", queue="short", tag="short-job")
	enqueued = time.time()
	wait_for(lambda: events(job="short-job"), timeout=60, message="the short job ran")
	ran = events(job="short-job")[0]["at"]
	assert ran - enqueued < 3, f"the short job waited {ran - enqueued:.1f} s behind the drain"
	assert "Waiting" in statuses(names).values() or "Queued" in statuses(names).values(), (
		"it ran while the backlog was still draining"
	)
	wait_for_status(names, wanted=["Finished"], timeout=120)


def test_a_draining_worker_killed_at_a_random_moment_loses_no_job(worker_conf, workers):
	"""SIGKILL a whole draining worker at a random moment: every job ends Finished, and each job
	that ended ran to its end once (a job cut off mid-run runs again from the start)."""
	set_type(SLOW, timeout=5, retry_delay=0, max_retries=3)
	worker_conf(sync_job_batch_size=3, sync_job_max_queued=3, sync_job_recovery_grace=1)
	names = backlog(30, sleep=0.1)
	(victim,) = workers(1)
	wait_for(
		lambda: len([e for e in events(event="end") if e["job"] in names]) >= 3,
		timeout=60,
		message="the drain is under way",
	)
	time.sleep(random.uniform(0, 1.5))
	kill_whole_worker(victim)
	cut_off = [name for name, status in statuses(names).items() if status == "Started"]
	workers(1)

	def all_done():
		maintenance.run_maintenance()
		return set(statuses(names).values()) == {"Finished"}

	wait_for(all_done, timeout=120, interval=1, message="every job recovered and finished")
	ended = Counter(e["job"] for e in events(event="end") if e["job"] in names)
	assert set(ended) == set(names)
	# a job killed after its controller's last step, before its commit, runs again: only those may
	twice = {name for name, count in ended.items() if count > 1}
	assert twice <= set(cut_off) and all(count <= 2 for count in ended.values()), ended
	for name in cut_off:
		assert frappe.db.get_value("Sync Job", name, "retry_count") == 1, "the cut-off job was retried"


def test_take_for_drain_takes_each_ready_job_once_and_types_take_turns(site_conf):
	"""Two drains taking from the same backlog never take one job twice, and a type that queued
	later is not starved by an older backlog of another type."""
	site_conf(sync_job_max_queued=1)  # RQ takes one job; the rest waits for the drains
	older = backlog(12)
	newer = [enqueue_sync_job("Test Single Sync", source_doc=make_source()).name for _ in range(3)]
	frappe.db.commit()
	queue = frappe.db.get_value("Sync Job", older[0], "queue")
	types = dispatcher.ready_types(queue)
	first = dispatcher.take_for_drain("drain-a", queue, 4, 3600, types)
	frappe.db.commit()
	second = dispatcher.take_for_drain("drain-b", queue, 4, 3600, types)
	frappe.db.commit()
	assert first and second and not set(first) & set(second)
	assert set(newer) & set(first), "the newer type takes its turn in the first group"
	for name in first:
		assert frappe.db.get_value("Sync Job", name, ["status", "job_id"]) == ("Queued", "drain-a")
	assert not dispatcher.take_for_drain("drain-c", queue, 4, 10, types), (
		"nothing fits in 10 s (timeouts of 300 s)"
	)


def test_rows_whose_push_failed_do_not_keep_the_drain_capacity_full(site_conf, monkeypatch):
	"""Drain mode's capacity is small (a batch per worker and one more): Queued rows whose push to RQ
	failed (a Redis blip) stop counting once past their push deadline while RQ holds nothing, so a
	new job still reaches the idle workers instead of waiting for maintenance."""
	import redis

	from sync_tweaks.queue import states

	site_conf(sync_job_batch_size=3, sync_job_max_queued=200, sync_job_drain_seconds=10)
	monkeypatch.setattr(states, "PUSH_GRACE_SECONDS", 0)
	_redis_up_long_enough_to_tell(monkeypatch)

	def blip(*args, **kwargs):
		raise redis.exceptions.ConnectionError("blip")

	with monkeypatch.context() as patched:
		patched.setattr(frappe, "enqueue", blip)
		stale = [enqueue_sync_job(SLOW, source_doc=make_source()).name for _ in range(6)]
		frappe.db.commit()
	assert list(statuses(stale).values()).count("Queued") >= 4, "pushed nowhere"
	time.sleep(0.05)  # past their push deadline
	new = enqueue_sync_job(SLOW, source_doc=make_source()).name
	frappe.db.commit()
	assert statuses([new]) == {new: "Queued"}


def test_the_worker_count_behind_the_capacity_is_read_fresh(site_conf, monkeypatch):
	"""The cached worker count expires for this process too: workers started since the last count
	raise the drain capacity within the cache's few seconds, not when the process ends."""
	from sync_tweaks.queue import workers as live

	site_conf(sync_job_batch_size=3, sync_job_max_queued=200, sync_job_drain_seconds=10)
	name = "sync_tweaks:workers:default"
	frappe.cache().set_value(name, 1, expires_in_sec=10)  # as another process's dispatch left it
	assert dispatcher.capacity("default") == 6
	frappe.cache().delete(frappe.cache().make_key(name))  # its 10 s are over
	monkeypatch.setattr(live, "count", lambda queue: 4)  # 3 workers started since
	assert dispatcher.capacity("default") == 15


def test_rows_a_running_rq_job_holds_count_against_the_drain_capacity_however_long_it_runs(site_conf):
	"""A drain's group (or an RQ job's batch) of slow jobs is Queued far past its push deadline; while
	its RQ job holds its lease those rows still count, so RQ does not get a second capacity's worth."""
	from frappe.utils.background_jobs import get_queue

	from sync_tweaks.queue import liveness, states

	site_conf(sync_job_batch_size=3, sync_job_max_queued=200, sync_job_drain_seconds=10)
	names = [enqueue_sync_job(SLOW, source_doc=make_source(), queue_on_insert=False).name for _ in range(3)]
	frappe.db.commit()
	for name in names:
		job = frappe.get_doc("Sync Job", name)
		states.mark_waiting(job)
	frappe.db.commit()
	frappe.db.sql("update `tabSync Job` set status='Waiting' where name in %(names)s", {"names": names})
	states.mark_queued(names, "sync-job-in-hand", in_hand=True)
	frappe.db.sql("update `tabSync Job` set deadline_at=1 where name in %(names)s", {"names": names})
	frappe.db.commit()
	get_queue("default").empty()  # the RQ jobs their first dispatch pushed: RQ holds nothing now
	with liveness.lease("sync-job-in-hand"):
		assert dispatcher._queued("default") >= 3, "held by a live RQ job"
	with pytest.MonkeyPatch.context() as patched:
		_redis_up_long_enough_to_tell(patched)
		assert dispatcher._queued("default") == 0, "nobody holds them: their RQ job is gone"
	frappe.db.sql("update `tabSync Job` set status='Canceled' where name in %(names)s", {"names": names})
	frappe.db.commit()


def _redis_up_long_enough_to_tell(monkeypatch):
	"""A lease absent from a Redis that restarted less than a lease ago may still be renewed; the
	suite's private Redis is that young, so let it tell."""
	from sync_tweaks.queue import liveness

	monkeypatch.setattr(liveness, "LEASE_SECONDS", 0)
	monkeypatch.setattr(liveness, "RENEW_SECONDS", 0)
