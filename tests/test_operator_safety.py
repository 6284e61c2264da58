"""Caller and operator safety: after-commit work, locked rows, stored-doc actions, bulk lines, removed
queues, edited Pending jobs, retention, dead worker registrations."""

import json
import time

import frappe
import pytest
from frappe.handler import run_doc_method
from frappe.utils import add_days, now_datetime

from sync_tweaks import doctor
from sync_tweaks.queue import dispatcher, slots, workers
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import SyncJob
from sync_tweaks.utils.sync_job import create_sync_job, enqueue_sync_job, enqueue_sync_jobs
from tests.conftest import REAL_SITE
from tests.test_security import BULK, call
from tests.utils import make_source, run_queued, second_connection, statuses

SINGLE = "Test Single Sync"


# 1. after-commit work


def test_bulk_cancel_of_1000_queued_jobs_in_one_request(site_conf):
	site_conf(sync_job_max_queued=2000, sync_job_drain_seconds=0)  # drain mode queues a batch per worker
	names = enqueue_sync_jobs(SINGLE, [f"bulk-cancel-{i}" for i in range(1000)])
	frappe.db.commit()
	assert set(statuses(names).values()) == {"Queued"}
	keys = frappe.get_all("Sync Job", filters={"name": ["in", names]}, pluck="concurrency_key")
	assert all(slots.holder(key) for key in keys[:20])

	started = time.monotonic()
	result = call(BULK, action="cancel", names=json.dumps(names))
	frappe.db.commit()  # the request's commit: slot releases and dispatch follow it, never raising
	took = time.monotonic() - started
	print(f"bulk cancel of 1,000 Queued jobs: {took:.1f} s including the commit")
	assert len(result["done"]) == 1000 and not result["failed"]
	assert set(statuses(names).values()) == {"Canceled"}
	assert not any(slots.holder(key) for key in keys), "every slot freed after the one commit"
	assert took < 60, f"{took:.1f} s"


def test_an_error_in_dispatch_after_commit_is_logged_not_raised(monkeypatch):
	def broken(keys=()):
		raise ValueError("dispatch broke")

	monkeypatch.setattr(dispatcher, "dispatch", broken)
	job = enqueue_sync_job(SINGLE, source_doc=make_source())
	frappe.db.commit()  # must not raise into the caller
	assert statuses([job.name]) == {job.name: "Waiting"}, "nothing lost: maintenance dispatches it later"
	logged = frappe.get_all(
		"Error Log", filters={"method": ["like", "%dispatch after commit%"]}, pluck="name", limit=1
	) or frappe.get_all("Error Log", filters={"error": ["like", "%dispatch broke%"]}, pluck="name", limit=1)
	assert logged, "the error is in the Error Log"


# 2. locked rows


@pytest.mark.skipif(not REAL_SITE, reason="SQLite has one writer and no row locks")
def test_dispatch_skips_rows_another_transaction_holds_locked():
	held = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	# the oldest Waiting job, as a long transaction that coalesced into it would hold it
	frappe.db.sql("update `tabSync Job` set status='Waiting', next_in_key=1 where name=%s", held.name)
	frappe.db.commit()
	with second_connection() as other:
		with other.cursor() as cursor:
			cursor.execute("begin")
			cursor.execute("select name from `tabSync Job` where name=%s for update", (held.name,))
		for _ in range(3):
			started = time.monotonic()
			job = enqueue_sync_job(SINGLE, source_doc=make_source())
			frappe.db.commit()
			assert time.monotonic() - started < 2, "the caller's save never waits on the held lock"
			assert statuses([job.name]) == {job.name: "Queued"}, "other jobs dispatch meanwhile"
		assert statuses([held.name]) == {held.name: "Waiting"}
		other.rollback()
	dispatcher.run_dispatch()
	assert statuses([held.name]) == {held.name: "Queued"}, "taken once the lock is gone"


# 3. document methods act on the stored job


def test_doc_methods_act_on_the_stored_job_not_the_copy_sent():
	source, other = make_source(), make_source()
	done = enqueue_sync_job(SINGLE, source_doc=source)
	frappe.db.commit()
	run_queued()
	sent = frappe.get_doc("Sync Job", done.name).as_dict()
	sent.update(source_document_name=other.name, status="Pending", context=json.dumps({"fail": "error"}))
	frappe.local.request = frappe._dict(method="POST")
	frappe.local.form_dict = frappe._dict()
	frappe.response = frappe.local.response = frappe._dict({"docs": []})
	try:
		run_doc_method("dry_run_again", docs=json.dumps(sent, default=str))
	finally:
		frappe.local.request = None
	copy = frappe.get_doc("Sync Job", frappe.response["message"])
	assert (copy.source_document_name, copy.context, copy.dry_run) == (source.name, None, 1)
	with pytest.raises(frappe.ValidationError):
		SyncJob(sent).start()  # the stored job is Finished, whatever the copy says


# 4. bulk inserts keep each line moving


def test_a_bulk_insert_behind_a_headless_line_serves_the_line(site_conf):
	site_conf(sync_job_max_queued=1)
	blocker = enqueue_sync_job(SINGLE, source_doc=make_source()).name
	frappe.db.commit()
	source = make_source()
	stranded = enqueue_sync_job(SINGLE, source_doc=source).name
	frappe.db.commit()
	frappe.db.sql("update `tabSync Job` set next_in_key=0 where name=%s", stranded)  # crossed transactions
	frappe.conf.pop("sync_job_max_queued")
	frappe.db.sql("update `tabSync Job` set status='Canceled' where name=%s", blocker)
	frappe.db.commit()
	(added,) = enqueue_sync_jobs(SINGLE, [source.name])
	frappe.db.commit()
	assert statuses([stranded, added]) == {stranded: "Queued", added: "Waiting"}, (
		"the new job asks for its key after commit: the line moves without the minute's repair"
	)


# 5. a queue that no longer exists


def test_a_job_whose_queue_was_removed_waits_with_a_clear_error_and_others_run():
	gone = enqueue_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False).name
	frappe.db.sql(
		"update `tabSync Job` set queue='gone', status='Waiting', next_in_key=1 where name=%s", gone
	)
	frappe.db.commit()
	others = [enqueue_sync_job(SINGLE, source_doc=make_source()).name for _ in range(2)]
	frappe.db.commit()
	dispatcher.run_dispatch(keys=[frappe.db.get_value("Sync Job", gone, "concurrency_key")])
	assert statuses(others) == dict.fromkeys(others, "Queued")
	assert statuses([gone]) == {gone: "Waiting"}
	assert "Queue gone does not exist" in frappe.db.get_value("Sync Job", gone, "error_message")
	found = [f for f in doctor.run(SINGLE) if f.check == "workers" and "gone" in f.problem]
	assert found and "common_site_config.json" in found[0].fix


# 6. editing a Pending job


def test_editing_a_pending_job_checks_its_queue_and_recomputes_its_key():
	job = create_sync_job(SINGLE, source_doc=make_source(), queue_on_insert=False)
	frappe.db.commit()
	other = make_source()
	job.source_document_name = other.name
	job.save()
	assert job.concurrency_key == f"source:{SINGLE}:Sync Test Source:{other.name}"
	job.queue = "no-such-queue"
	with pytest.raises(frappe.ValidationError):
		job.save()


# 7. retention


def test_retention_deletes_every_eligible_job_behind_1000_parents_with_open_children():
	old = add_days(now_datetime(), -40)
	parents = enqueue_sync_jobs(SINGLE, [f"parent-{i}" for i in range(1001)], queue_on_insert=False)
	children = enqueue_sync_jobs(SINGLE, [f"child-{i}" for i in range(1001)], queue_on_insert=False)
	eligible = enqueue_sync_job(SINGLE, source_document_name="eligible", queue_on_insert=False).name
	frappe.db.sql(
		"update `tabSync Job` set status='Finished', modified=%s where name in %s",
		(old, (*parents, eligible)),
	)
	for parent, child in zip(parents, children, strict=True):
		frappe.db.sql("update `tabSync Job` set parent_sync_job=%s where name=%s", (parent, child))
	frappe.db.sql("update `tabSync Job` set modified=%s where name=%s", (add_days(old, -1), eligible))
	frappe.db.commit()
	SyncJob.clear_old_logs(30)
	frappe.db.commit()
	assert not frappe.db.exists("Sync Job", eligible), "older than 1,000 parents that must stay"
	assert frappe.db.count("Sync Job", {"name": ["in", parents]}) == 1001


# 10. dead worker registrations


def test_a_sigkilled_workers_registration_is_not_a_live_worker():
	from frappe.utils.background_jobs import get_queue, get_redis_conn
	from rq import Worker

	ghost = Worker([get_queue("long")], connection=get_redis_conn(), name="ghost-sync-tweaks")
	ghost.register_birth()
	connection = get_redis_conn()
	connection.hset(ghost.key, "pid", 999_999_999)  # no such process on this host
	try:
		assert any(w.name == ghost.name for w in Worker.all(queue=get_queue("long")))
		assert all(w.name != ghost.name for w in workers.live_workers("long"))
	finally:
		ghost.register_death()
