"""Folding ended jobs into their backfill's roll-up.

A fold locks the backfill's row, takes the backfill's jobs in a final status that no fold counted
yet, adds them up (`engine.rollup.RollUp`), marks each with its outcome, counts Failed, Conflict and
open jobs live, and commits: a job is counted once whichever worker folds first. Inside a worker
folds are throttled to one a second per backfill; the RQ job's end folds what the throttle left.
"""

import json
from collections import defaultdict

import frappe
from frappe.utils import now_datetime
from rq.timeouts import JobTimeoutException

from sync_tweaks.backfill.states import B, move, publish
from sync_tweaks.engine.rollup import (
	CONFLICT,
	FAILED,
	FOLDED_STATUSES,
	OPEN_STATUSES,
	OUTCOMES,
	RollUp,
)
from sync_tweaks.engine.status import S
from sync_tweaks.queue import clock

THROTTLE_MS = 1000
# jobs folded per round (a transaction each: a fold never holds the whole table), rounds per fold
FOLD_LIMIT = 2000
FOLD_ROUNDS = 10
FAILURE_GROUPS = 20
TRAILING = "sync_tweaks_backfills_trailing"
COUNT_FIELDS = {outcome: frappe.scrub(outcome) + "_count" for outcome in OUTCOMES}
ROLLUP_FIELDS = ("outcome_counts", "field_changes", "sample_diffs")


def touch(names: list[str], throttle: bool = False):
	"""Fold each backfill in `names`; with `throttle`, at most once a second each (the rest waits
	for `fold_trailing`)."""
	for name in names:
		if throttle and not frappe.cache.set(throttle_key(name), 1, nx=True, px=THROTTLE_MS):
			frappe.flags.setdefault(TRAILING, set()).add(name)
			continue
		fold(name)


def fold_trailing():
	"""Fold what the throttle held back (a worker's RQ job ends)."""
	for name in sorted(frappe.flags.pop(TRAILING, None) or ()):
		fold(name)


def fold_active(limit: int = 20):
	"""Maintenance: fold the backfills whose roll-up may still move (creating, running, or with jobs
	open), the longest unfolded first."""
	names = frappe.get_all(
		"Sync Backfill",
		or_filters=[["status", "in", [B.CREATING.value, B.RUNNING.value]], ["jobs_open", ">", 0]],
		pluck="name",
		order_by="folded_at asc",
		limit=limit,
	)
	for name in names:
		fold(name)


def throttle_key(name: str) -> str:
	return frappe.cache.make_key(f"sync_tweaks:backfill_fold:{name}")


def fold(name: str) -> bool:
	"""Fold `name`'s ended jobs, a transaction per round of FOLD_LIMIT jobs, until none is left (or
	FOLD_ROUNDS rounds: the next fold goes on); never raises (errors are logged)."""
	for _round in range(FOLD_ROUNDS):
		try:
			more = _fold(name)
			frappe.db.commit()
		except JobTimeoutException:
			frappe.db.rollback()
			raise
		except Exception:
			frappe.db.rollback()
			frappe.log_error(title=f"Sync Backfill {name}: roll-up failed")
			frappe.db.commit()
			return False
		if not more:
			return True
	return True


def _fold(name: str) -> bool:
	"""One round; True when ended jobs are left for the next one (then the backfill is not done)."""
	frappe.db.commit()  # the jobs are read after the lock, in a snapshot that sees every folded job
	if not frappe.db.sql("select name from `tabSync Backfill` where name=%s for update", name):
		return False
	backfill = frappe.get_doc("Sync Backfill", name)
	rollup = RollUp.load(*(backfill.get(field) for field in ROLLUP_FIELDS))
	jobs = frappe.db.sql(
		"""select name, title, status, operation, dry_run, conflict_count, diff_summary
		from `tabSync Job` where sync_backfill=%(name)s and backfill_outcome is null
		and status in %(final)s limit %(limit)s""",
		{"name": name, "final": FOLDED_STATUSES, "limit": FOLD_LIMIT},
		as_dict=True,
	)
	by_outcome = defaultdict(list)
	for job in jobs:
		by_outcome[rollup.add(job)].append(job.name)
	for outcome, names in by_outcome.items():
		frappe.db.sql(
			"update `tabSync Job` set backfill_outcome=%(outcome)s where name in %(names)s",
			{"outcome": outcome, "names": tuple(names)},
		)
	more = len(jobs) == FOLD_LIMIT
	live = dict(
		frappe.db.sql(
			"""select status, count(*) from `tabSync Job` where sync_backfill=%s and backfill_outcome is null
			group by status""",
			name,
		)
	)
	groups = failure_groups(name)
	retrying = frappe.db.sql(
		"""select count(*) from `tabSync Job` where sync_backfill=%(name)s and backfill_outcome is null
		and status=%(failed)s and due_at > 0""",
		{"name": name, "failed": S.FAILED.value},
	)[0][0]
	# a Failed job whose retry is due is not done: it counts as open, not as failed
	failed = live.get(S.FAILED.value, 0) - retrying
	totals = rollup.totals({FAILED: failed, CONFLICT: live.get(S.CONFLICT.value, 0)})
	fields = {
		**{COUNT_FIELDS[outcome]: count for outcome, count in totals.items()},
		**rollup.dump(),
		"jobs_open": sum(live.get(status, 0) for status in OPEN_STATUSES) + retrying,
		"failure_groups": json.dumps(groups, default=str),
		"folded_at": clock.now(),
	}
	if backfill.status == B.RUNNING.value and not fields["jobs_open"] and not more:
		move(backfill, B.COMPLETED, ended_at=now_datetime(), **fields)
	elif backfill.status == B.COMPLETED.value and (fields["jobs_open"] or more):
		move(backfill, B.RUNNING, ended_at=None, **fields)
	else:
		changed = any(backfill.get(field) != value for field, value in fields.items() if field != "folded_at")
		backfill.db_set(fields, update_modified=False)
		if changed:
			publish(name)
	return more


def failure_groups(name: str) -> list[dict]:
	"""The backfill's Failed jobs grouped by cause: signature, title, count, retrying, an example."""
	groups = frappe.db.sql(
		"""select error_signature as signature, max(error_title) as title, count(*) as count,
		sum(case when due_at > 0 then 1 else 0 end) as retrying, min(name) as example
		from `tabSync Job` where sync_backfill=%(name)s and backfill_outcome is null and status=%(failed)s
		group by error_signature order by count(*) desc, error_signature limit %(limit)s""",
		{"name": name, "failed": S.FAILED.value, "limit": FAILURE_GROUPS},
		as_dict=True,
	)
	return [
		{**group, "count": int(group["count"]), "retrying": int(group["retrying"] or 0)} for group in groups
	]
