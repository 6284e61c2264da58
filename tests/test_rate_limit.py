"""Rate limits shared by every worker: no window of `rate_period` seconds starts more than `rate_limit`
jobs, a held-back job waits (no retry used) and starts as soon as a token frees (the waker)."""

import time

import frappe
from frappe.utils import get_datetime

from sync_tweaks.queue import dispatcher, gates, ratelimit
from sync_tweaks.queue.workers import live_workers
from sync_tweaks.utils.sync_job import enqueue_sync_job, enqueue_sync_jobs
from tests.utils import make_source, set_type, statuses, wait_for_status


def started_epochs(names) -> list[float]:
	"""Recorded starts as seconds relative to the first (site time, microseconds kept)."""
	frappe.db.rollback()
	values = sorted(get_datetime(frappe.db.get_value("Sync Job", name, "started_at")) for name in names)
	return [(value - values[0]).total_seconds() for value in values]


def most_in_any_window(starts: list[float], period: float) -> int:
	"""The most starts in any half-open window [t, t + period) (windows starting at a start suffice)."""
	return max(sum(1 for s in starts if a <= s < a + period) for a in starts)


def test_five_per_two_seconds_30_jobs_2_workers(workers):
	set_type("Test Single Sync", rate_limit=5, rate_period=2, concurrency="None")
	sources = [make_source().name for _ in range(30)]
	workers(2)
	deadline = time.monotonic() + 20  # let both workers register first (a warm-up, not a check)
	while len(live_workers()) < 2 and time.monotonic() < deadline:
		time.sleep(0.2)
	began = time.monotonic()
	names = enqueue_sync_jobs("Test Single Sync", sources)
	frappe.db.commit()
	final = wait_for_status(names, timeout=120)
	elapsed = time.monotonic() - began

	assert set(final.values()) == {"Finished"}, final
	assert not frappe.get_all("Sync Job", filters={"name": ["in", names], "retry_count": [">", 0]}), (
		"waiting for the rate limit uses no retry"
	)
	starts = started_epochs(names)
	worst = most_in_any_window(starts, 2)
	span = starts[-1]
	ideal = (30 / 5 - 1) * 2  # the 30th start can come 10 s after the first
	print(
		f"\nrate limit 5/2s, 30 jobs, 2 workers: most starts in a 2 s window {worst}, first->last start "
		f"{span:.2f} s (ideal {ideal:.0f} s, +{(span / ideal - 1) * 100:.1f}%), enqueue->all done {elapsed:.2f} s"
	)
	print("starts", [round(s, 2) for s in starts])
	assert worst <= 5, starts
	assert ideal * 0.99 <= span <= ideal * 1.2, starts


def test_rate_limited_jobs_wait_for_the_waker_and_no_dispatcher_pushes_them():
	"""Without a worker nothing runs them: they stay Waiting (no retry used), the waker is armed, and
	repeated dispatches push nothing (no loop)."""
	set_type("Test Single Sync", rate_limit=2, rate_period=30, concurrency="None")
	names = [enqueue_sync_job("Test Single Sync", source_doc=make_source()).name for _ in range(3)]
	frappe.db.commit()
	assert set(statuses(names).values()) == {"Waiting"}
	assert dispatcher.run_dispatch() == [] and dispatcher.run_dispatch() == []
	assert ratelimit.wake_at("default") is not None
	assert frappe.cache().get(frappe.cache().make_key("sync_tweaks:waker:default")), "a waker is queued"


def test_per_key_limits_split_the_type(workers):
	"""`rate_limit_key(sync_job)` (here: the context's endpoint) gives each endpoint its own limit."""
	set_type("Test Single Sync", rate_limit=2, rate_period=2, concurrency="None")
	workers(1)
	jobs = {
		endpoint: [
			enqueue_sync_job(
				"Test Single Sync", source_doc=make_source(), context={"endpoint": endpoint}
			).name
			for _ in range(4)
		]
		for endpoint in ("orders", "stock")
	}
	frappe.db.commit()
	wait_for_status(jobs["orders"] + jobs["stock"], timeout=60)
	for endpoint, names in jobs.items():
		starts = started_epochs(names)
		assert most_in_any_window(starts, 2) <= 2, (endpoint, starts)
		assert starts[-1] >= 2 * 0.99, "the third start of an endpoint waits for its window"
	both = started_epochs(jobs["orders"] + jobs["stock"])
	assert most_in_any_window(both, 2) > 2, "the endpoints do not share one limit"


def test_the_claim_takes_the_token_a_dispatcher_could_not_know_about():
	"""Two dispatchers that each saw a free token: the worker's claim refuses the second start and
	puts the job back in line (Waiting, no retry used)."""
	from tests.utils import run_queued

	set_type("Test Single Sync", rate_limit=1, rate_period=30, concurrency="None")
	# a waker that fell behind lets every dispatcher push rate-limited jobs
	frappe.cache().set(frappe.cache().make_key("sync_tweaks:waker_behind:default"), 1, ex=30)
	first = enqueue_sync_job("Test Single Sync", source_doc=make_source()).name
	frappe.db.commit()
	assert statuses([first]) == {first: "Queued"}
	# another machine started a job of the type meanwhile: the bucket is used up
	job_type = frappe.get_cached_doc("Sync Job Type", "Test Single Sync")
	assert ratelimit.take("Test Single Sync", ratelimit.limit_of(job_type), "elsewhere", time.time()) == 0
	run_queued()
	assert statuses([first]) == {first: "Waiting"}
	assert frappe.db.get_value("Sync Job", first, "retry_count") == 0
	assert (
		gates.admit(
			[
				frappe._dict(
					frappe.db.get_value("Sync Job", first, dispatcher.COLUMNS.split(", "), as_dict=True)
				)
			]
		)
		== []
	)


def test_a_rate_limited_job_in_another_queue_than_its_types_gets_a_wake_up():
	"""A job may name its own queue: the wake-up of a rate-limited type is armed in the queues its waiting jobs are in."""
	import time

	set_type("Test Bypass Sync", rate_limit=1, rate_period=30, concurrency="None", queue="default")
	name = enqueue_sync_job("Test Bypass Sync", context={"note": "r16"}, queue="long").name
	frappe.db.commit()
	assert statuses([name]) == {name: "Waiting"}
	cache = frappe.cache()
	# the waker of "long" wakes (clears its wake-up) but a job elsewhere took the only token first
	cache.delete(ratelimit._wake_key("long"))
	job_type = frappe.get_cached_doc("Sync Job Type", "Test Bypass Sync")
	assert ratelimit.take("Test Bypass Sync", ratelimit.limit_of(job_type), "elsewhere", time.time()) == 0
	assert dispatcher.take_ready("long", "sync-waker-review16", lead=ratelimit.LEAD) == []
	frappe.db.commit()
	dispatcher.run_dispatch()
	frappe.db.commit()
	# the token frees (the period passes): dispatch passes and the minute's maintenance run
	cache.delete(ratelimit._key("Test Bypass Sync"))
	for _ in range(3):
		dispatcher.run_dispatch()
		frappe.db.commit()
	assert statuses([name]) == {name: "Waiting"}
	assert ratelimit.wake_at("long") is not None, (
		f"nothing will dispatch the job: only the type's queue is armed (default: {ratelimit.wake_at('default')})"
	)


def test_a_rate_limited_type_with_nothing_waiting_arms_no_waker():
	"""A rate-limited type with nothing waiting arms no waker (a paused type's job waits meanwhile)."""
	set_type("Test Bypass Sync", rate_limit=5, rate_period=30, concurrency="None", queue="default")
	set_type("Test Single Sync", paused=1, concurrency="None")
	name = enqueue_sync_job("Test Single Sync", source_doc=make_source()).name
	frappe.db.commit()
	assert statuses([name]) == {name: "Waiting"}
	frappe.cache().delete(ratelimit._wake_key("default"))
	dispatcher.run_dispatch()
	frappe.db.commit()
	assert ratelimit.wake_at("default") is None, "a waker is armed for a type with nothing waiting"


def test_the_waker_ends_without_a_successor_when_nothing_of_its_queue_can_start(monkeypatch):
	"""The waker (lifetime cut to 2 s) ends without queueing a successor when nothing in its queue may start."""
	import time

	set_type("Test Bypass Sync", rate_limit=5, rate_period=30, concurrency="None", queue="default")
	set_type("Test Single Sync", paused=1, concurrency="None")
	name = enqueue_sync_job("Test Single Sync", source_doc=make_source()).name
	frappe.db.commit()
	cache = frappe.cache()
	cache.set(ratelimit._lock_key("default"), "r16token", ex=60)
	cache.set(ratelimit._wake_key("default"), repr(time.time()), ex=60)
	pushed = []
	monkeypatch.setattr(frappe, "enqueue", lambda *a, **kw: pushed.append(kw))
	monkeypatch.setattr(ratelimit, "LIFETIME", 2)
	rounds = []
	real = dispatcher.take_ready
	monkeypatch.setattr(dispatcher, "take_ready", lambda *a, **kw: rounds.append(1) or real(*a, **kw))
	ratelimit.serve("default", "r16token")
	assert statuses([name]) == {name: "Waiting"}
	assert pushed == [], f"the waker took nothing in {len(rounds)} rounds and still queued a successor"


def test_the_waker_takes_only_jobs_whose_timeouts_fit_in_its_rq_limit():
	"""The waker's RQ job leaves room for a batch of the longest rate-limited jobs, and it takes only
	jobs whose timeouts still fit in what is left of that limit."""
	set_type(
		"Test Bypass Sync", rate_limit=100, rate_period=30, concurrency="None", queue="default", timeout=300
	)
	names = [enqueue_sync_job("Test Bypass Sync", context={"n": i}).name for i in range(3)]
	frappe.db.commit()
	assert ratelimit.waker_timeout() >= ratelimit.LIFETIME + 60 + dispatcher.batch_size() * 300
	taken = dispatcher.take_ready("default", "sync-waker-test", lead=ratelimit.LEAD, seconds=400)
	frappe.db.commit()
	assert len(taken) == 1 and set(taken) <= set(names), "one job of 300 s fits in 400 s, not two"
