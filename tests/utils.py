"""Factories and waits shared by the tests."""

import contextlib
import time

import frappe
import redis
from frappe.utils.background_jobs import get_queue

from sync_tweaks.engine.status import S
from sync_tweaks.queue import worker

FIXTURE_TYPES = (
	"Test Single Sync",
	"Test Multi Sync",
	"Test Bypass Sync",
	"Test Broken Sync",
	"Test Slow Sync",
)


# types tests create on the fly (their jobs and links are cleaned up like the fixtures')
EXTRA_TYPES = ("ToDo to Note", "Test Two Way Forward", "Test Two Way Back", "Test ToDo Lineage")


def make_source(title: str | None = None, items=None, **fields):
	"""A committed Sync Test Source (workers in other processes must see it)."""
	doc = frappe.get_doc(
		{
			"doctype": "Sync Test Source",
			"title": title or "src " + frappe.generate_hash(length=6),
			"items": [{"item_code": code, "qty": qty} for code, qty in (items or [])],
			**fields,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return doc


def set_type(name: str, **fields):
	"""Change a fixture Sync Job Type for one test (reset_state restores it)."""
	frappe.db.set_value("Sync Job Type", name, fields)
	frappe.clear_document_cache("Sync Job Type", name) if hasattr(frappe, "clear_document_cache") else None
	frappe.db.commit()


def run_queued(max_rounds: int = 20) -> list[str]:
	"""Run every Queued job in this process, as a worker would, until none is left; returns statuses."""
	statuses = []
	for _ in range(max_rounds):
		rows = frappe.get_all(
			"Sync Job", filters={"status": S.QUEUED.value}, fields=["name", "job_id"], order_by="creation asc"
		)
		if not rows:
			break
		for row in rows:
			statuses.extend(worker.run_batch([row.name], row.job_id))
	return statuses


def commit_and_dispatch():
	"""Commit the test's transaction: the after-commit dispatch queues ready jobs."""
	frappe.db.commit()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		frappe.db.rollback()
		value = predicate()
		if value:
			return value
		time.sleep(interval)
	raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def statuses(names) -> dict[str, str]:
	frappe.db.rollback()
	return {name: frappe.db.get_value("Sync Job", name, "status") for name in names}


def wait_for_status(names, wanted=None, timeout: float = 60) -> dict[str, str]:
	"""Wait until every job is in a final status (or in `wanted`)."""
	wanted = set(
		wanted
		or [
			s.value
			for s in S
			if s.value in ("Finished", "Skipped", "Relayed", "No Target", "Canceled", "Failed")
		]
	)
	names = list(names)
	wait_for(
		lambda: all(s in wanted for s in statuses(names).values()), timeout, message=f"{names} in {wanted}"
	)
	return statuses(names)


def reset_state():
	"""Delete fixture jobs and targets, free their slots, empty the queues, restore fixture types."""
	from sync_tweaks_tests.recorder import clear

	frappe.db.rollback()
	frappe.db.delete("Sync Job", {"sync_job_type": ["in", (*FIXTURE_TYPES, *EXTRA_TYPES)]})
	frappe.db.delete("Sync Link", {"sync_job_type": ["in", (*FIXTURE_TYPES, *EXTRA_TYPES)]})
	frappe.db.delete("Sync Test Target")
	frappe.db.delete("Sync Backfill")
	frappe.db.delete("Notification Log", {"document_type": "Sync Job Type"})
	for name in FIXTURE_TYPES:
		frappe.db.set_value(
			"Sync Job Type",
			name,
			{
				"disabled": 0,
				"concurrency": "Per Source",
				"coalesce_duplicates": 0,
				"timeout": 30 if name == "Test Slow Sync" else 60,
				"retry_delay": 0,
				"max_retries": 2,
				"retry_backoff": "Fixed",
				"verbose_logging": 0,
				"queue": "default",
				"run_as": None,
				"on_conflict": "Overwrite",
				"rate_limit": 0,
				"rate_period": 1,
				"paused": 0,
				"paused_reason": None,
				"pause_after_failures": 0,
				"expire_after": 0,
				"max_deferrals": 10,
			},
		)
	frappe.db.commit()
	frappe.clear_cache(doctype="Sync Job Type")
	cache = frappe.cache()
	try:
		for key in cache.keys(cache.make_key("sync_tweaks:*")):
			cache.delete(key)
		clear()
		for queue in ("default", "short", "long"):
			get_queue(queue).empty()
	except redis.exceptions.ConnectionError:
		pass


def kill_whole_worker(process):
	"""SIGKILL a worker and its work horses (RQ puts each horse in a session of its own, so killing
	the worker's process group alone leaves the horse running)."""
	import os
	import signal

	from tests.conftest import stop_process_group

	for pid in descendants(process.pid):
		with contextlib.suppress(ProcessLookupError):
			os.kill(pid, signal.SIGKILL)
	stop_process_group(process, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
	"""Every process below `pid`, read from /proc."""
	import os

	children: dict[int, list[int]] = {}
	for entry in os.listdir("/proc"):
		if entry.isdigit():
			try:
				with open(f"/proc/{entry}/stat") as f:
					parent = int(f.read().rsplit(")", 1)[1].split()[1])
			except (OSError, ValueError, IndexError):
				continue
			children.setdefault(parent, []).append(int(entry))
	found, todo = [], [pid]
	while todo:
		for child in children.get(todo.pop(), []):
			found.append(child)
			todo.append(child)
	return found


@contextlib.contextmanager
def second_connection():
	"""A second MariaDB connection to the site's database (real site only), autocommit unless told."""
	import pymysql

	conf = frappe.conf
	connection = pymysql.connect(
		host=conf.db_host or "127.0.0.1",
		port=int(conf.db_port or 3306),
		user=conf.db_user or conf.db_name,
		password=conf.db_password,
		database=conf.db_name,
		autocommit=True,
	)
	try:
		yield connection
	finally:
		connection.close()


@contextlib.contextmanager
def realtime_statuses():
	"""Collect the `sync_job_status` events sent while the block runs: yields {job: {statuses}}, filled
	when the block ends (events may trail the commit by a moment, so it reads for up to 5 s more)."""
	import json

	from frappe.utils.background_jobs import get_redis_connection_without_auth

	pubsub = get_redis_connection_without_auth().pubsub()
	pubsub.subscribe("events")
	seen: dict[str, set] = {}
	try:
		yield seen
		deadline = time.monotonic() + 5
		while time.monotonic() < deadline:
			message = pubsub.get_message(timeout=0.5)
			if message and message["type"] == "message":
				payload = json.loads(message["data"])
				if payload["event"] == "sync_job_status":
					seen.setdefault(payload["message"]["name"], set()).add(payload["message"]["status"])
			elif seen and all({"Finished", "Failed", "Skipped"} & statuses for statuses in seen.values()):
				break
	finally:
		pubsub.close()
