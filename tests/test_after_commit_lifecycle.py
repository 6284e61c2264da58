"""A job's after-commit work over its whole life, run through `worker.run_batch`: every status is
announced once, in order, before the job's push to RQ; every slot is refreshed and released once;
a key's next job takes the slot only after the previous job released it."""

from collections import Counter

import frappe
import pytest

from sync_tweaks.queue import after_commit, dispatcher, slots, worker
from sync_tweaks.utils.sync_job import enqueue_sync_job
from tests.utils import make_source, statuses

SINGLE = "Test Single Sync"


@pytest.fixture
def log(monkeypatch):
	"""What reaches Redis and RQ, in order."""
	events = []

	def record(module, name, event):
		real = getattr(module, name)

		def recorded(*args):
			result = real(*args)
			events.extend(event(*args, result))
			return result

		monkeypatch.setattr(module, name, recorded)

	def announced(pending, _result):
		return [
			("announce", message["name"], message["status"])
			for event, message, _room in pending["announce"]
			if event == "sync_job_status"
		]

	record(after_commit, "_send_announce", announced)
	record(slots, "refresh_in", lambda _pipe, _key, holder, _timeout, _r: [("refresh", holder)])
	record(slots, "release_in", lambda _pipe, _key, holder, _r: [("release", holder)])
	record(
		slots,
		"acquire_many",
		lambda claims, took: [("acquire", c[1], t) for c, t in zip(claims, took, strict=True)],
	)
	record(dispatcher, "_enqueue", lambda _id, names, *rest: [("push", name) for name in names])
	return events


def run_queued_batches():
	"""Run what is Queued, one RQ job's group at a time, until nothing is left (as workers would)."""
	for _round in range(20):
		frappe.db.rollback()
		rows = frappe.get_all("Sync Job", {"status": "Queued"}, ["name", "job_id"], order_by="creation asc")
		if not rows:
			return
		groups = {}
		for row in rows:
			groups.setdefault(row.job_id, []).append(row.name)
		for delivery, names in groups.items():
			worker.run_batch(names, delivery)
	raise AssertionError("jobs still Queued after 20 rounds")


def problems_in(events, names) -> list[str]:
	found = []
	counts = Counter(events)
	for name in names:
		said = [event[2] for event in events if event[:2] == ("announce", name)]
		if said not in (["Queued", "Started", "Finished"], ["Queued", "Started", "Skipped"]):
			found.append(f"{name} announced {said}")
		for kind in ("refresh", "release", "push"):
			if counts[(kind, name)] != 1:
				found.append(f"{name}: {kind} {counts[(kind, name)]} times")
		if ("push", name) in events and events.index(("announce", name, "Queued")) > events.index(
			("push", name)
		):
			found.append(f"{name}: Queued announced after its push to RQ")
	return found


def test_a_line_of_jobs_of_one_key_and_another_job(log, site_conf, monkeypatch):
	site_conf(sync_job_batch_size=4)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	shared = make_source()
	line = [enqueue_sync_job(SINGLE, source_doc=shared).name for _ in range(3)]
	other = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	run_queued_batches()
	assert set(statuses([*line, other]).values()) <= {"Finished", "Skipped"}
	assert problems_in(log, [*line, other]) == []
	for previous, following in zip(line, line[1:], strict=False):
		released = log.index(("release", previous))
		taken = log.index(("acquire", following, slots.TOOK))
		assert released < taken, (previous, following)


def test_jobs_queued_by_a_batchs_fill_pass(log, site_conf, monkeypatch):
	"""RQ holds one job at a time: each next job goes through the fill pass at the end of a group."""
	site_conf(sync_job_batch_size=1, sync_job_max_queued=1)
	monkeypatch.setattr(dispatcher, "worker_count", lambda queue: 1)
	names = [enqueue_sync_job(SINGLE, source_doc=make_source()).name for _ in range(3)]
	frappe.db.commit()
	run_queued_batches()
	assert set(statuses(names).values()) <= {"Finished", "Skipped"}
	assert problems_in(log, names) == []
