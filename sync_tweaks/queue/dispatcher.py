"""Moves Waiting jobs to Queued when their line is free, and pushes them to RQ after commit.

Waiting jobs live only in the database; RQ holds at most `sync_job_max_queued` sync jobs per queue,
all of which can run now, and in drain mode a batch per worker (see `capacity`). Two paths find the
next job: when a key's job ends, the head of that key's line is queued (`keys`); every dispatch also
fills the queues from the marked heads of free lines (see `lines`). Rows another transaction holds
locked are skipped, never waited for.
"""

import math
from functools import partial

import frappe
import redis
from frappe import _
from frappe.utils.background_jobs import get_queue, get_queues_timeout

from sync_tweaks.engine.status import S
from sync_tweaks.queue import clock, gates, lines, liveness, slots, states, timeouts, workers

RUNNER = "sync_tweaks.queue.worker.execute_sync_jobs"
# what the selection reads of a Waiting job (`gates` needs type, creation and due_at)
COLUMNS = "name, concurrency_key, queue, timeout, sync_job_type, creation, due_at"
DEFAULT_BATCH_SIZE = 12
DEFAULT_MAX_QUEUED = 200
# how long one RQ job keeps taking ready jobs under a backlog (see `take_for_drain`)
DEFAULT_DRAIN_SECONDS = 10


def run_dispatch(keys=(), fill: bool = True) -> list[str]:
	"""Dispatch in a transaction of its own; Redis being down only delays jobs until maintenance."""
	try:
		names = dispatch(keys, fill)
		frappe.db.commit()
		return names
	except redis.exceptions.RedisError:
		frappe.db.rollback()
		return []


def dispatch(keys=(), fill: bool = True) -> list[str]:
	"""Queue the head of each of `keys`' lines, then (with `fill`) fill every queue up to capacity;
	returns names. The caller commits; the push to RQ follows that commit.
	"""
	known = set(get_queues_timeout())
	waiting = _waiting_queues(known)
	if not waiting:
		# the usual case when a job ends: nothing waits (index probes instead of a full pass)
		return []
	taken: dict[str, list] = {}
	keys = {key for key in keys if key}
	busy = lines.busy_keys() if fill else lines.busy_keys(keys)
	# read once per pass: this transaction's snapshot would give the same answer again
	paused = gates.paused_types()
	rooms = _Rooms()
	heads = [lines.head(key) for key in sorted(lines.waiting_keys(keys - busy))]
	for queue, rows in _by_queue(row for row in heads if row).items():
		if queue not in known:
			_refuse_unknown_queue(rows, known)
			continue
		got = {row.name for row in _take(rows[: max(rooms[queue], 0)], busy, paused=paused)}
		taken.setdefault(queue, []).extend(row for row in rows if row.name in got)
		# the ones that cannot go now (queue full, slot still held): the fill pass must find them
		lines.mark_heads([row.name for row in rows if row.name not in got and not row.next_in_key])
	blocked = gates.blocked_types(paused=paused)
	for queue in known if fill else ():
		if queue not in waiting:
			continue
		room = rooms[queue] - len(taken.get(queue, ()))
		if room < min(batch_size(), max_queued()):
			# RQ still holds nearly its capacity: wait until a whole batch fits instead of
			# topping up one job at a time (one-job RQ jobs would undo batching under a backlog)
			continue
		taken.setdefault(queue, []).extend(
			_take(oldest_ready(queue, busy, limit=room, blocked=blocked), busy, paused=paused)
		)
	for queue, rows in taken.items():
		workers = idle_workers(queue, room=rooms[queue])
		for batch in split_batches(rows, batch_size(), workers):
			push([row.name for row in batch], queue, rq_timeout([row.timeout for row in batch]))
	return [row.name for rows in taken.values() for row in rows]


def take_for_drain(delivery: str, queue: str, limit: int, seconds: float, types: list[str]) -> list[str]:
	"""Drain mode: mark up to `limit` ready jobs of `queue` Queued for `delivery`, the RQ job that is
	running and will run them next (nothing is pushed). Their timeouts together fit in `seconds`,
	the time the RQ job has left. The `types` (see `ready_types`) take turns: one job of each per
	round, starting each group at the next type (a counter all drains of the queue share), so no
	type waits behind another's backlog. Types with nothing ready are dropped from `types`. Rows
	another drain holds are skipped. The caller commits."""
	busy = lines.busy_keys()
	paused = gates.paused_types()
	blocked = gates.blocked_types(paused=paused)
	candidates = {}
	for job_type in list(types):
		rows = (
			oldest_ready(queue, busy, limit, job_type=job_type, skip_locked=True, blocked=blocked)
			if job_type not in blocked
			else []
		)
		if rows:
			candidates[job_type] = rows
		else:
			types.remove(job_type)
	order = sorted(candidates)
	if order:
		start = frappe.cache().incr(frappe.cache().make_key(f"sync_tweaks:drain_turn:{queue}")) % len(order)
		order = order[start:] + order[:start]
	rows, keys = [], set()
	while len(rows) < limit and any(candidates.values()):
		for job_type in order:
			if candidates[job_type] and len(rows) < limit:
				row = candidates[job_type].pop(0)
				if not row.concurrency_key or row.concurrency_key not in keys:
					keys.add(row.concurrency_key)
					rows.append(row)
	names = [row.name for row in _take(fitting(rows, seconds), busy, paused=paused)]
	if names:
		states.mark_queued(names, delivery, in_hand=True)
	return names


def ready_types(queue: str) -> list[str]:
	"""Sync Job Types with a job heading a free line in `queue`: one indexed probe per type."""
	return [
		job_type
		for job_type in frappe.get_all("Sync Job Type", pluck="name", order_by="name")
		if frappe.db.sql(
			"""select name from `tabSync Job` where status=%(waiting)s and queue=%(queue)s
			and next_in_key=1 and sync_job_type=%(job_type)s limit 1""",
			{"waiting": S.WAITING.value, "queue": queue, "job_type": job_type},
		)
	]


def fitting(rows: list, seconds: float) -> list:
	"""The rows whose timeouts, run one after another, end within `seconds` (a job too long for
	what is left is skipped, not the ones behind it)."""
	fit, total = [], 0
	for row in rows:
		needs = (row.timeout or 300) + timeouts.OVERRUN_SECONDS
		if total + needs <= seconds:
			fit.append(row)
			total += needs
	return fit


def take_one(name: str, job_id: str) -> bool:
	"""Queue the Waiting job `name` for delivery `job_id` now, if it heads its free line (foreground runs)."""
	rows = frappe.db.sql(
		f"select {COLUMNS} from `tabSync Job` where name=%(name)s",
		{"name": name},
		as_dict=True,
	)
	key = rows[0].concurrency_key if rows else None
	if not rows or (key and (key in lines.busy_keys([key]) or lines.head(key).name != name)):
		return False
	if not _take(rows, set()):
		return False
	states.mark_queued([name], job_id)
	return True


def take_ready(queue: str, delivery: str, lead: float = 0.0, seconds: float | None = None) -> list[str]:
	"""Queue for `delivery` the jobs of `queue` that may start within `lead` seconds (the waker runs
	them itself), whose timeouts fit in the `seconds` its RQ job has left; returns their names."""
	busy = lines.busy_keys()
	candidates = oldest_ready(queue, busy, limit=batch_size(), blocked=gates.blocked_types(lead))
	if seconds is not None:
		candidates = fitting(candidates, seconds)
	rows = _take(candidates, busy, lead)
	if rows:
		states.mark_queued([row.name for row in rows], delivery)
	return [row.name for row in rows]


def push(names: list[str], queue: str, timeout: int) -> str:
	"""Mark `names` Queued under one new RQ job id and push that RQ job (timeout in s) after commit."""
	job_id = "sync-job-" + frappe.generate_hash(length=16)
	states.mark_queued(names, job_id)
	frappe.db.after_commit.add(partial(_enqueue, job_id, names, queue, timeout))
	return job_id


def rq_timeout(timeouts: list[int | None]) -> int:
	"""The RQ job's own limit: its jobs' timeouts, the grace, and room for a drain of batches like it
	(`take_for_drain` only takes what still fits)."""
	timeouts = [timeout or 300 for timeout in timeouts]
	drain = drain_seconds() + batch_size() * max(timeouts) if drain_seconds() else 0
	return sum(timeouts) + slots.grace_seconds() + drain


def oldest_ready(
	queue: str,
	busy: set[str],
	limit: int,
	job_type: str | None = None,
	skip_locked: bool = False,
	blocked=(),
) -> list[dict]:
	"""The oldest Waiting jobs of `queue` (and `job_type`) that head a free line, at most one per key,
	leaving out deferred jobs not due yet and the `blocked` types (paused, rate limit used up)."""
	condition = " and sync_job_type=%(job_type)s" if job_type else ""
	rows = frappe.db.sql(
		f"""select {COLUMNS} from `tabSync Job`
		where status=%(waiting)s and queue=%(queue)s and next_in_key=1{condition}
		and (concurrency_key is null or concurrency_key not in %(busy)s)
		and ifnull(due_at, 0) <= %(now)s and sync_job_type not in %(blocked)s
		order by creation asc limit %(limit)s{" for update skip locked" if skip_locked else ""}""",
		{
			"waiting": S.WAITING.value,
			"queue": queue,
			"job_type": job_type,
			"busy": tuple(busy) or ("",),
			"limit": limit * 2,
			"now": clock.now(),
			"blocked": tuple(blocked) or ("",),
		},
		as_dict=True,
	)
	return _one_per_key(rows)[:limit]


def _one_per_key(rows: list) -> list:
	ready, keys = [], set()
	for row in rows:
		if row.concurrency_key and row.concurrency_key in keys:
			continue
		keys.add(row.concurrency_key)
		ready.append(row)
	return ready


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


def drain_seconds() -> float:
	"""Drain mode's time budget per RQ job (site config `sync_job_drain_seconds`; 0 turns it off).
	Batches of one (`sync_job_batch_size` 1) never drain: one RQ job per sync job."""
	if batch_size() == 1:
		return 0
	value = frappe.conf.get("sync_job_drain_seconds")
	return max(float(DEFAULT_DRAIN_SECONDS if value is None else value), 0)


def capacity(queue: str) -> int:
	"""How many sync jobs of `queue` may be Queued at once: `sync_job_max_queued`, and in drain mode
	a batch per worker and one more (the fill pass tops up whole batches). A draining worker takes
	ready jobs straight from the database, so RQ only needs a batch for each worker that gets free;
	more would each start a fresh work horse for one batch at the end of a backlog instead of being
	drained. Queued counts the groups running RQ jobs hold too (see `_queued`)."""
	if not drain_seconds() or queue not in get_queues_timeout():
		return max_queued()
	return min(max_queued(), (max(worker_count(queue), 1) + 1) * batch_size())


def idle_workers(queue: str, room: int | None = None) -> int:
	"""Workers to spread new jobs over: all of them, unless RQ already holds a batch for each.
	`room`: the queue's room before the jobs being taken, when the caller read it already."""
	count = worker_count(queue)
	already_queued = _queued(queue) if room is None else capacity(queue) - room
	return count if already_queued < count * batch_size() else 1


def worker_count(queue: str) -> int:
	"""How many live RQ workers listen on `queue`, cached for a few seconds."""
	cache_key = f"sync_tweaks:workers:{queue}"
	count = frappe.cache().get_value(cache_key, expires=True)  # not kept for the process's life
	if not count:
		count = workers.count(queue)
		if count:  # none yet: the next dispatch looks again (workers may be starting)
			frappe.cache().set_value(cache_key, count, expires_in_sec=10)
	return count


def _waiting_queues(queues) -> set[str]:
	"""The `queues` with a Waiting job, and "" when a job waits in any queue (one the bench no
	longer has too): one statement of index probes, one per queue."""
	queues = sorted(queues)
	probe = "(select 1 from `tabSync Job` where status=%(waiting)s{} limit 1)"
	probes = [probe.format("")] + [probe.format(f" and queue=%(queue_{i})s") for i in range(len(queues))]
	found = frappe.db.sql(
		"select " + ", ".join(probes),
		{"waiting": S.WAITING.value, **{f"queue_{i}": queue for i, queue in enumerate(queues)}},
	)[0]
	return {name for name, hit in zip(["", *queues], found, strict=True) if hit}


class _Rooms(dict):
	"""Each queue's room, read once per dispatch pass."""

	def __missing__(self, queue: str) -> int:
		self[queue] = room_left(queue)
		return self[queue]


def room_left(queue: str) -> int:
	"""How many more sync jobs of `queue` may be Queued now (see `capacity`)."""
	return capacity(queue) - _queued(queue)


def _queued(queue: str) -> int:
	"""Sync jobs of `queue` Queued now. In drain mode, while RQ holds no RQ job of the queue, rows
	past their push deadline whose RQ job holds no lease are left out: their push failed or their
	RQ job vanished (maintenance puts them back in line), and they must not keep the small capacity
	full while workers sit idle. Rows a running RQ job holds (its lease is live) still count."""
	queued = frappe.db.sql(
		"select count(*) from `tabSync Job` where status=%(queued)s and queue=%(queue)s",
		{"queued": S.QUEUED.value, "queue": queue},
	)[0][0]
	if not (queued and drain_seconds() and queue in get_queues_timeout()) or _rq_holds_jobs(queue):
		return queued
	overdue = frappe.db.sql(
		"""select job_id, count(*) from `tabSync Job` where status=%(queued)s and queue=%(queue)s
		and deadline_at < %(now)s group by job_id""",
		{"queued": S.QUEUED.value, "queue": queue, "now": clock.now()},
	)
	return queued - sum(count for job_id, count in overdue if liveness.is_alive(job_id) is False)


def _rq_holds_jobs(queue: str) -> bool:
	try:
		return bool(len(get_queue(queue)))
	except redis.exceptions.RedisError:
		return True  # cannot tell: count every row


def _take(rows: list, busy: set[str], lead: float = 0.0, paused: set[str] | None = None) -> list:
	"""Lock `rows` (at most one per key) and take their keys' slots; returns the rows taken, which
	the caller marks Queued. A row locked by another transaction, taken by someone else first, or
	whose key got busy meanwhile is left alone, and so is one that may not start now (`gates`)."""
	rows = gates.admit(rows, lead, paused)
	keyed = [row for row in rows if row.concurrency_key]
	took = {row.name: slots.TOOK for row in rows}
	results = (
		slots.acquire_many([(row.concurrency_key, row.name, row.timeout) for row in keyed]) if keyed else []
	)
	took.update(zip((row.name for row in keyed), results, strict=True))
	held = [row for row in rows if took[row.name]]
	if not held:
		return []
	still_waiting = set(
		frappe.db.sql_list(
			"""select name from `tabSync Job` where name in %(names)s and status=%(waiting)s
			for update skip locked""",
			{"names": tuple(row.name for row in held), "waiting": S.WAITING.value},
		)
	)
	ours = [row for row in held if row.name in still_waiting]
	held_lines = lines.busy_keys({row.concurrency_key for row in ours if row.concurrency_key}, lock=True)
	taken = []
	for row in held:
		if row.name in still_waiting and row.concurrency_key not in held_lines:
			taken.append(row)
			if row.concurrency_key:
				busy.add(row.concurrency_key)
		elif row.concurrency_key and took[row.name] == slots.TOOK:
			# only a slot this pass took: one it "had" may be the winning dispatcher's for this job
			slots.release(row.concurrency_key, row.name)
	return taken


def _by_queue(rows) -> dict[str, list]:
	grouped: dict[str, list] = {}
	for row in rows:
		grouped.setdefault(row.queue, []).append(row)
	return grouped


def _refuse_unknown_queue(rows: list, known: set[str]):
	"""A job whose queue was removed from the bench's workers waits with a clear error (doctor reports it)."""
	message = _("Queue {0} does not exist on this bench; use one of {1}, or cancel the job")
	for row in rows:
		text = message.format(row.queue, ", ".join(sorted(known)))
		frappe.db.sql(
			"update `tabSync Job` set error_message=%(text)s where name=%(name)s and ifnull(error_message, '')!=%(text)s",
			{"text": text, "name": row.name},
		)


def _enqueue(job_id: str, names: list[str], queue: str, timeout: int):
	try:
		frappe.enqueue(RUNNER, queue=queue, timeout=timeout, job_id=job_id, sync_job_names=names)
	except (redis.exceptions.RedisError, OSError):
		# the jobs stay Queued; maintenance pushes again jobs whose RQ job does not exist
		frappe.log_error(title="Sync Job push to RQ failed")
		frappe.db.commit()
