"""Fan-out completion: a relayed parent's `on_children_done` runs once, when every child is done.

A child is done when it is final or Failed with no retry pending. The decision is made after the
child's own commit, in a transaction of its own, under the parent's row lock: of two workers ending
the last two children at once, the second to take the lock sees both children done (its reads
follow the lock) and the first's `children_done_at`, so exactly one runs the hook.
"""

import frappe

from sync_tweaks.engine.status import OPEN, S


def complete(parent: str) -> bool:
	"""Run `parent`'s on_children_done if all its children are done and it has not run; commits."""
	try:
		ran = _complete(parent)
		frappe.db.commit()
		return ran
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title=f"Sync Job {parent}: children completion failed")
		frappe.db.commit()
		return False


def complete_missed(limit: int = 100) -> list[str]:
	"""Maintenance: relayed parents whose children are all done but whose completion never ran (a
	check after a child's commit failed); the oldest `limit` are checked each run."""
	parents = frappe.db.sql_list(
		"""select p.name from `tabSync Job` p where p.status=%(relayed)s and p.children_done_at is null
		and not exists (select 1 from `tabSync Job` c where c.parent_sync_job=p.name
			and (c.status in %(open)s or (c.status=%(failed)s and c.due_at > 0)))
		order by p.creation asc limit %(limit)s""",
		{
			"relayed": S.RELAYED.value,
			"open": tuple(s.value for s in OPEN | {S.CONFLICT}),
			"failed": S.FAILED.value,
			"limit": limit,
		},
	)
	return [parent for parent in parents if complete(parent)]


def _complete(parent: str) -> bool:
	from sync_tweaks.queue import states

	rows = frappe.db.sql(
		"select status, children_done_at from `tabSync Job` where name=%s for update", parent, as_dict=True
	)
	if not rows or rows[0].children_done_at or rows[0].status != S.RELAYED.value:
		frappe.db.rollback()
		return False
	if open_children(parent, lock=True):
		frappe.db.rollback()
		return False
	job = frappe.get_doc("Sync Job", parent)
	error = run_hook(job)
	states.mark_children_done(job, error)
	return True


def open_children(parent: str, lock: bool = False) -> int:
	"""How many children of `parent` are not done yet (`lock`: the latest committed rows)."""
	return len(
		frappe.db.sql(
			f"""select name from `tabSync Job` where parent_sync_job=%(parent)s
			and (status in %(open)s or (status=%(failed)s and due_at > 0))
			{"for update" if lock else ""}""",
			# a child in Conflict waits for a person: not done
			{"parent": parent, "open": tuple(s.value for s in OPEN | {S.CONFLICT}), "failed": S.FAILED.value},
		)
	)


def children(parent: str) -> list:
	return frappe.get_all(
		"Sync Job",
		filters={"parent_sync_job": parent},
		fields=[
			"name",
			"status",
			"operation",
			"target_document_type",
			"target_document_name",
			"error_message",
			"due_at",
		],
		order_by="creation asc",
	)


def run_hook(job) -> str | None:
	"""Call the parent controller's on_children_done as the parent's user; returns an error or None.
	Its writes commit with the completion mark (rolled back in a dry run, and on an error)."""
	from sync_tweaks import apply, controller
	from sync_tweaks.queue import transactions, worker
	from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import get_job_type

	user = frappe.session.user
	point = transactions.Savepoint("sync_job_children_done")
	try:
		job_type = get_job_type(job.sync_job_type)
		module, _shape = controller.load(job_type)
		hook = getattr(module, "on_children_done", None)
		if not hook:
			return None
		job.flags.run_as = worker.run_as_user(job, job_type)
		worker.run_as(job)
		with transactions.no_commits(job), apply.dry_run_scope(job, "sync_job_dry_run_children"):
			hook(job, job.get_source_document(), children(job.name))
		return None
	except Exception:
		point.rollback()
		frappe.log_error(title=f"Sync Job {job.name}: on_children_done failed")
		return frappe.get_traceback()
	finally:
		if frappe.session.user != user:
			frappe.set_user(user)


def progress(parent: str) -> dict:
	"""Counts for the parent's form: total, done, failed (no retry left), retrying, and when done."""
	rows = frappe.db.sql(
		"select status, due_at from `tabSync Job` where parent_sync_job=%s", parent, as_dict=True
	)
	failed = sum(1 for row in rows if row.status == S.FAILED.value and not row.due_at)
	retrying = sum(1 for row in rows if row.status == S.FAILED.value and row.due_at)
	open_statuses = {s.value for s in OPEN | {S.CONFLICT}}
	done = sum(1 for row in rows if row.status not in open_statuses) - retrying
	return {
		"total": len(rows),
		"done": done,
		"failed": failed,
		"retrying": retrying,
		"children_done_at": frappe.db.get_value("Sync Job", parent, "children_done_at"),
	}
