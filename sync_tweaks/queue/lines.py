"""Each concurrency key is a line: its jobs run one at a time, in creation order.

A key is held by its Queued or Started job, or by a Failed job whose retry is pending. Waiting jobs
of a free key are served oldest first. The dispatcher's fill pass reads only jobs marked
`next_in_key` (the heads of free lines), so a long line behind a busy key costs it nothing.
"""

import frappe

from sync_tweaks.engine.status import S

# the statuses that hold a key's line, as SQL over `tabSync Job`
HOLDS_LINE = "(status in ('Queued', 'Started') or (status = 'Failed' and due_at > 0))"
OPEN = (S.WAITING.value, S.QUEUED.value, S.STARTED.value)


def key_is_free(key: str | None, name: str | None = None) -> bool:
	"""Whether a job starting to wait under `key` is first in line: nothing else of its key is open."""
	if not key:
		return True
	return not frappe.db.sql(
		f"""select name from `tabSync Job` where concurrency_key=%(key)s and name!=%(name)s
		and (status in %(open)s or {HOLDS_LINE}) limit 1""",
		{"key": key, "open": OPEN, "name": name or ""},
	)


def busy_keys(keys=None, lock: bool = False) -> set[str]:
	"""Keys (of `keys`, or all) whose line is held. `lock` reads the latest committed rows (a locking
	read, skipping rows other transactions hold) instead of this transaction's snapshot: the
	dispatcher's last check before taking a key, behind the key's slot."""
	if keys is not None and not keys:
		return set()
	condition = "concurrency_key in %(keys)s" if keys is not None else "concurrency_key is not null"
	return set(
		frappe.db.sql_list(
			f"""select concurrency_key from `tabSync Job` where {condition} and {HOLDS_LINE}
			{"for update skip locked" if lock else ""}""",
			{"keys": tuple(keys or ())},
		)
	)


def holder(key: str) -> str | None:
	"""The job holding `key`'s line, if any."""
	rows = frappe.db.sql(
		f"select name from `tabSync Job` where concurrency_key=%(key)s and {HOLDS_LINE} limit 1", {"key": key}
	)
	return rows[0][0] if rows else None


def lined_up(keys: list[str]) -> set[str]:
	"""Of `keys`, those with a Waiting job or a held line (a new job of them waits behind)."""
	found = set()
	for start in range(0, len(keys), 1000):
		chunk = tuple(keys[start : start + 1000])
		found |= busy_keys(chunk) | waiting_keys(chunk)
	return found


def waiting_keys(keys) -> set[str]:
	"""Of `keys`, those with a Waiting job (one query, so a batch's keys cost one probe)."""
	if not keys:
		return set()
	return set(
		frappe.db.sql_list(
			"""select distinct concurrency_key from `tabSync Job`
			where concurrency_key in %(keys)s and status=%(waiting)s""",
			{"keys": tuple(keys), "waiting": S.WAITING.value},
		)
	)


def head(key: str):
	"""The oldest Waiting job of `key`."""
	rows = frappe.db.sql(
		"""select name, concurrency_key, queue, timeout, next_in_key, sync_job_type, creation, due_at
		from `tabSync Job` where concurrency_key=%(key)s and status=%(waiting)s order by creation asc limit 1""",
		{"key": key, "waiting": S.WAITING.value},
		as_dict=True,
	)
	return rows[0] if rows else None


def mark_heads(names: list[str]):
	"""Mark `names` next in line, skipping rows another transaction holds (repair marks them later)."""
	if names:
		names = frappe.db.sql_list(
			"select name from `tabSync Job` where name in %(names)s for update skip locked",
			{"names": tuple(names)},
		)
	if names:
		frappe.db.sql(
			"update `tabSync Job` set next_in_key=1 where name in %(names)s", {"names": tuple(names)}
		)


def repair() -> int:
	"""Mark the head of every free line that has none marked (after a lost worker, a deleted job or
	two transactions that crossed); returns how many were marked."""
	keys = frappe.db.sql_list(
		"""select concurrency_key from `tabSync Job` where status=%(waiting)s and concurrency_key is not null
		group by concurrency_key having max(next_in_key)=0""",
		{"waiting": S.WAITING.value},
	)
	busy = busy_keys(keys)
	heads = [head(key) for key in keys if key not in busy]
	names = [row.name for row in heads if row]
	mark_heads(names)
	return len(names)


def held_behind_retry(limit: int = 100) -> list[dict]:
	"""Lines held by a Failed job waiting for its retry while newer jobs wait behind it (for doctor)."""
	return frappe.db.sql(
		"""select f.name, f.concurrency_key, f.retry_after, count(w.name) as waiting
		from `tabSync Job` f join `tabSync Job` w
		on w.concurrency_key=f.concurrency_key and w.status=%(waiting)s
		where f.status=%(failed)s and f.due_at > 0
		group by f.name, f.concurrency_key, f.retry_after order by f.due_at limit %(limit)s""",
		{"waiting": S.WAITING.value, "failed": S.FAILED.value, "limit": limit},
		as_dict=True,
	)
