"""What fixture controllers did, recorded in Redis so that tests see it across worker processes and rollbacks."""

import json
import time

import frappe

KEY = "sync_tweaks_tests:events"


def record(sync_job, event: str, **data):
	entry = {
		"job": sync_job.name,
		"event": event,
		"at": time.time(),
		"source": sync_job.source_document_name,
		"user": frappe.session.user,
		**data,
	}
	frappe.cache().rpush(frappe.cache().make_key(KEY), json.dumps(entry, default=str))


def bare_job(tag: str):
	"""A plain `frappe.enqueue` job that only records when it ran."""
	entry = {"job": tag, "event": "bare", "at": time.time(), "user": frappe.session.user}
	frappe.cache().rpush(frappe.cache().make_key(KEY), json.dumps(entry))


def events(job: str | None = None, event: str | None = None) -> list[dict]:
	raw = frappe.cache().lrange(frappe.cache().make_key(KEY), 0, -1)
	entries = [json.loads(item) for item in raw]
	return [e for e in entries if (job is None or e["job"] == job) and (event is None or e["event"] == event)]


def clear():
	frappe.cache().delete(frappe.cache().make_key(KEY))


def behave(sync_job):
	"""Fixture behaviour steered by the job's context: sleep, fail, write carelessly."""
	from sync_tweaks import SyncJobFatalError

	context = sync_job.get_context()
	if context.get("sleep"):
		time.sleep(float(context["sleep"]))
	if context.get("sleep_first_attempt") and not sync_job.retry_count:
		time.sleep(float(context["sleep_first_attempt"]))
	if context.get("careless_write"):
		frappe.get_doc({"doctype": "Sync Test Target", "title": "careless " + sync_job.name}).insert(
			ignore_permissions=True
		)
	if context.get("careless_commit"):
		frappe.db.commit()
	if context.get("swallowed_commit"):
		try:
			frappe.db.commit()
		except Exception:
			pass
	if context.get("swallow"):
		swallow(float(context["swallow"]), Exception)
	if context.get("swallow_everything"):
		swallow(float(context["swallow_everything"]), BaseException)
	if context.get("lock"):
		frappe.db.sql("select name from `tabSync Test Target` where name=%s for update", context["lock"])
	if context.get("publish"):
		frappe.publish_realtime("sync_tweaks_test_event", {"job": sync_job.name}, after_commit=True)
	if context.get("retry_after") is not None and (sync_job.deferral_count or 0) < int(
		context.get("defer_times", 1)
	):
		from sync_tweaks.exceptions import SyncJobRetryAfter

		raise SyncJobRetryAfter(float(context["retry_after"]), context.get("retry_reason") or "HTTP 429")
	if context.get("fail_child") and context.get("item_code") == context["fail_child"]:
		raise ValueError(f"child {sync_job.name} failed")
	if context.get("fail_with"):
		raise ValueError(context["fail_with"])
	fail = context.get("fail")
	if fail == "fatal":
		raise SyncJobFatalError("cannot be fixed by retrying")
	if fail == "error":
		raise ValueError("boom")
	if fail == "until_retry" and (sync_job.retry_count or 0) < int(context.get("fail_times", 1)):
		raise ValueError(f"failing attempt {sync_job.retry_count}")


def swallow(seconds: float, caught: type[BaseException]):
	"""A careless controller: keeps working for `seconds`, catching everything of type `caught`."""
	deadline = time.monotonic() + seconds
	while time.monotonic() < deadline:
		try:
			time.sleep(0.05)
		except caught:
			pass
