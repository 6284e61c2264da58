"""Moves Waiting jobs to Queued when their concurrency slot is free, and pushes them to RQ.

Waiting jobs live only in the database; RQ holds at most `sync_job_max_queued` sync jobs per queue,
all of which can run now. Pushing happens after the transaction that queued the jobs commits.

Two paths find the next job. When a key's job ends, the oldest Waiting job of that key is queued
(`keys`). Every dispatch also fills the queues from the oldest Waiting jobs marked `next_in_key`:
jobs without a key, and jobs whose key had nothing else open when they started waiting. Jobs behind
a busy key are left unmarked, so a long line behind one key costs the fill pass nothing.
"""

import math
from functools import partial

import frappe
import redis
from frappe.utils import now
from frappe.utils.background_jobs import get_queue, get_queues_timeout

from sync_tweaks import slots
from sync_tweaks.engine.status import ACTIVE, S

RUNNER = "sync_tweaks.runner.execute_sync_jobs"
DEFAULT_BATCH_SIZE = 12
DEFAULT_MAX_QUEUED = 200
FLAG = "sync_tweaks_dispatch_requested"
KEYS_FLAG = "sync_tweaks_dispatch_keys"


def request_dispatch(keys=()):
	"""Dispatch once after the current transaction commits (nothing happens if it rolls back).

	`keys`: concurrency keys whose oldest Waiting job should be queued if the key is free by then.
	"""
	pending = frappe.flags.get(KEYS_FLAG)
	if pending is None:
		pending = frappe.flags[KEYS_FLAG] = set()
	pending.update(key for key in keys if key)
	if frappe.flags.get(FLAG):
		return
	frappe.flags[FLAG] = True
	frappe.db.after_commit.add(_dispatch_after_commit)
	frappe.db.after_rollback.add(_forget_request)


def next_in_key(key: str | None, name: str | None = None) -> bool:
	"""Whether a job starting to wait under `key` is next in line: nothing else of its key is open."""
	if not key:
		return True
	return not frappe.db.sql(
		"""select name from `tabSync Job` where concurrency_key=%(key)s and status in %(open)s
		and name!=%(name)s limit 1""",
		{"key": key, "open": (S.WAITING.value, *(s.value for s in ACTIVE)), "name": name or ""},
	)


def open_keys(keys: list[str]) -> tuple[set[str], set[str]]:
	"""Of `keys`, those with a Waiting job and those with a Queued or Started job."""
	found = {}
	for label, statuses in (("waiting", (S.WAITING.value,)), ("active", tuple(s.value for s in ACTIVE))):
		found[label] = set()
		for start in range(0, len(keys), 1000):
			found[label].update(
				frappe.db.sql_list(
					"""select distinct concurrency_key from `tabSync Job`
					where concurrency_key in %(keys)s and status in %(statuses)s""",
					{"keys": tuple(keys[start : start + 1000]), "statuses": statuses},
				)
			)
	return found["waiting"], found["active"]


def release_after_commit(job):
	"""Free the slot `job` held once its new status commits, then dispatch its key's next job."""
	frappe.db.after_commit.add(partial(_release_and_dispatch, job.concurrency_key, job.name))


def dispatch(keys=()) -> list[str]:
	"""Queue the oldest Waiting job of each of `keys`, then fill every queue up to capacity; returns names.

	The caller commits; the push to RQ follows that commit.
	"""
	if not _waiting():
		# the usual case when a job ends: nothing waits (one index probe instead of a full pass)
		return []
	taken: dict[str, list[dict]] = {}
	busy = active_keys()
	heads = [oldest_waiting_of_key(key) for key in sorted({k for k in keys if k} - busy)]
	for queue, rows in _by_queue(row for row in heads if row).items():
		room = _room(queue)
		got = {row.name for row in _take(rows[: max(room, 0)], busy)}
		taken.setdefault(queue, []).extend(row for row in rows if row.name in got)
		# the ones that cannot go now (queue full, slot still held): the fill pass must find them
		_mark_next_in_line([row.name for row in rows if row.name not in got and not row.next_in_key])
	for queue in get_queues_timeout():
		if not _waiting(queue):
			continue
		room = _room(queue)
		if room < min(batch_size(), max_queued()):
			# RQ still holds nearly `max_queued` jobs: wait until a whole batch fits instead of
			# topping up one job at a time (one-job RQ jobs would undo batching under a backlog)
			continue
		taken.setdefault(queue, []).extend(_take(oldest_ready(queue, busy, limit=room), busy))
	for queue, rows in taken.items():
		if not rows:
			continue
		for batch in split_batches(rows, batch_size(), idle_workers(queue, len(rows))):
			push(batch, queue)
	return [row.name for rows in taken.values() for row in rows]


def push(rows: list[dict], queue: str) -> str:
	"""Give Queued `rows` one RQ job id and push it to RQ after commit."""
	job_id = "sync-job-" + frappe.generate_hash(length=16)
	names = [row.name for row in rows]
	frappe.db.sql(
		"update `tabSync Job` set job_id=%(job_id)s where name in %(names)s",
		{"job_id": job_id, "names": tuple(names)},
	)
	timeout = sum(row.timeout or 300 for row in rows) + slots.grace_seconds()
	frappe.db.after_commit.add(partial(_enqueue, job_id, names, queue, timeout))
	return job_id


def active_keys() -> set[str]:
	"""Keys that have a Queued or Started job (the database is the truth, slots only serialise)."""
	return set(
		frappe.db.sql_list(
			"select distinct concurrency_key from `tabSync Job` where status in %(active)s and concurrency_key is not null",
			{"active": tuple(s.value for s in ACTIVE)},
		)
	)


def oldest_waiting_of_key(key: str):
	rows = frappe.db.sql(
		"""select name, concurrency_key, queue, timeout, next_in_key from `tabSync Job`
		where concurrency_key=%(key)s and status=%(waiting)s order by creation asc limit 1""",
		{"key": key, "waiting": S.WAITING.value},
		as_dict=True,
	)
	return rows[0] if rows else None


def oldest_ready(queue: str, busy: set[str], limit: int) -> list[dict]:
	"""The oldest Waiting jobs of `queue` next in line of a key that is not busy, at most one per key."""
	rows = frappe.db.sql(
		"""select name, concurrency_key, queue, timeout from `tabSync Job`
		where status=%(waiting)s and queue=%(queue)s and next_in_key=1
		and (concurrency_key is null or concurrency_key not in %(busy)s)
		order by creation asc limit %(limit)s""",
		{"waiting": S.WAITING.value, "queue": queue, "busy": tuple(busy) or ("",), "limit": limit * 2},
		as_dict=True,
	)
	ready, keys = [], set()
	for row in rows:
		if row.concurrency_key and row.concurrency_key in keys:
			continue
		keys.add(row.concurrency_key)
		ready.append(row)
	return ready[:limit]


def split_batches(rows: list, size: int, workers: int) -> list[list]:
	"""At most `size` jobs per RQ job, and at least one RQ job per idle worker."""
	if not rows:
		return []
	count = max(math.ceil(len(rows) / max(size, 1)), min(len(rows), max(workers, 1)))
	return [rows[i::count] for i in range(count)]


def batch_size() -> int:
	return max(int(frappe.conf.get("sync_job_batch_size") or DEFAULT_BATCH_SIZE), 1)


def max_queued() -> int:
	return max(int(frappe.conf.get("sync_job_max_queued") or DEFAULT_MAX_QUEUED), 1)


def idle_workers(queue: str, taking: int) -> int:
	"""Workers to spread new jobs over: all of them, unless RQ already holds a batch for each."""
	workers = worker_count(queue)
	already_queued = max_queued() - _room(queue) - taking
	return workers if already_queued < workers * batch_size() else 1


def worker_count(queue: str) -> int:
	"""How many RQ workers listen on `queue`, cached for a few seconds."""
	cache_key = f"sync_tweaks:workers:{queue}"
	count = frappe.cache().get_value(cache_key)
	if count is None:
		from rq import Worker

		try:
			count = Worker.count(queue=get_queue(queue))
		except redis.exceptions.RedisError:
			count = 1
		frappe.cache().set_value(cache_key, count, expires_in_sec=10)
	return count


def _waiting(queue: str | None = None) -> bool:
	"""Whether any job (of `queue`) is Waiting."""
	condition = " and queue=%(queue)s" if queue else ""
	return bool(
		frappe.db.sql(
			f"select name from `tabSync Job` where status=%(waiting)s{condition} limit 1",
			{"waiting": S.WAITING.value, "queue": queue},
		)
	)


def _room(queue: str) -> int:
	queued = frappe.db.sql(
		"select count(*) from `tabSync Job` where status=%(queued)s and queue=%(queue)s",
		{"queued": S.QUEUED.value, "queue": queue},
	)[0][0]
	return max_queued() - queued


def _take(rows: list, busy: set[str]) -> list:
	"""Waiting -> Queued for `rows` (at most one per key), each holding its key's slot; returns the
	rows taken. A row someone else took first, or whose key got busy meanwhile, is left alone."""
	held = [row for row in rows if not row.concurrency_key or _acquire(row)]
	if not held:
		return []
	names = tuple(row.name for row in held)
	still_waiting = set(
		frappe.db.sql_list(
			"select name from `tabSync Job` where name in %(names)s and status=%(waiting)s for update",
			{"names": names, "waiting": S.WAITING.value},
		)
	)
	keys = tuple({row.concurrency_key for row in held if row.concurrency_key})
	active = set(
		frappe.db.sql_list(
			"select distinct concurrency_key from `tabSync Job` where concurrency_key in %(keys)s and status in %(active)s",
			{"keys": keys, "active": tuple(s.value for s in ACTIVE)},
		)
		if keys
		else ()
	)
	taken, lost = [], []
	for row in held:
		ok = row.name in still_waiting and row.concurrency_key not in active
		(taken if ok else lost).append(row)
	for row in lost:
		if row.concurrency_key:
			slots.release(row.concurrency_key, row.name)
	if taken:
		frappe.db.sql(
			"""update `tabSync Job` set status=%(queued)s, job_id=null, modified=%(now)s, modified_by=%(user)s
			where name in %(names)s""",
			{
				"queued": S.QUEUED.value,
				"now": now(),
				"user": frappe.session.user,
				"names": tuple(row.name for row in taken),
			},
		)
	for row in taken:
		frappe.clear_document_cache("Sync Job", row.name)
		_publish(row.name, S.QUEUED)
		if row.concurrency_key:
			busy.add(row.concurrency_key)
	return taken


def _acquire(row) -> bool:
	return slots.acquire(row.concurrency_key, row.name, (row.timeout or 300) + slots.grace_seconds())


def _by_queue(rows) -> dict[str, list]:
	grouped: dict[str, list] = {}
	for row in rows:
		grouped.setdefault(row.queue, []).append(row)
	return grouped


def _mark_next_in_line(names: list[str]):
	if names:
		frappe.db.sql(
			"update `tabSync Job` set next_in_key=1 where name in %(names)s", {"names": tuple(names)}
		)


def _publish(name: str, status):
	frappe.publish_realtime(
		"sync_job_status",
		{"name": name, "status": str(status)},
		doctype="Sync Job",
		docname=name,
		after_commit=True,
	)


def _enqueue(job_id: str, names: list[str], queue: str, timeout: int):
	try:
		frappe.enqueue(RUNNER, queue=queue, timeout=timeout, job_id=job_id, sync_job_names=names)
	except (redis.exceptions.RedisError, OSError):
		# the jobs stay Queued; the scheduler's recovery re-pushes jobs whose RQ job does not exist
		frappe.log_error(title="Sync Job push to RQ failed", message=frappe.get_traceback())
		frappe.db.commit()


def mark_next_in_line() -> int:
	"""Mark the oldest Waiting job of every free key that has none marked (after a lost worker, a
	deleted job or a race between two transactions); returns how many were marked."""
	busy = active_keys()
	keys = frappe.db.sql_list(
		"""select concurrency_key from `tabSync Job` where status=%(waiting)s and concurrency_key is not null
		group by concurrency_key having max(next_in_key)=0""",
		{"waiting": S.WAITING.value},
	)
	heads = [oldest_waiting_of_key(key) for key in keys if key not in busy]
	names = [row.name for row in heads if row]
	_mark_next_in_line(names)
	return len(names)


def _forget_request():
	frappe.flags.pop(FLAG, None)
	frappe.flags.pop(KEYS_FLAG, None)


def _dispatch_after_commit():
	frappe.flags.pop(FLAG, None)
	run_dispatch(keys=sorted(frappe.flags.pop(KEYS_FLAG, None) or ()))


def _release_and_dispatch(key: str | None, holder: str):
	try:
		if key:
			slots.release(key, holder)
	except redis.exceptions.RedisError:
		pass  # the slot expires on its own; its TTL bounds the wait
	run_dispatch(keys=[key] if key else ())


def run_dispatch(keys=()) -> list[str]:
	"""Dispatch in a transaction of its own; Redis being down only delays jobs until the scheduler runs."""
	try:
		names = dispatch(keys)
		frappe.db.commit()
		return names
	except redis.exceptions.RedisError:
		frappe.db.rollback()
		return []
