"""Failed jobs grouped by cause (error signature), for the Desk report, the CLI and bulk actions."""

import frappe
from frappe import _

from sync_tweaks.engine.status import S
from sync_tweaks.exceptions import SyncJobError

GROUP_LIMIT = 1000


def groups(sync_job_type: str | None = None) -> list[dict]:
	"""One row per error signature of the Failed jobs (of a type): count, first/last seen, types, a
	readable cause, how many still have a retry pending and how many have none left."""
	condition = "and sync_job_type=%(type)s" if sync_job_type else ""
	rows = frappe.db.sql(
		f"""select ifnull(error_signature, '') as signature, count(*) as count,
		min(ifnull(ended_at, modified)) as first_seen, max(ifnull(ended_at, modified)) as last_seen,
		max(error_title) as cause, sum(case when due_at > 0 then 1 else 0 end) as retrying
		from `tabSync Job` where status=%(failed)s {condition}
		group by ifnull(error_signature, '') order by count(*) desc, max(ifnull(ended_at, modified)) desc""",
		{"failed": S.FAILED.value, "type": sync_job_type},
		as_dict=True,
	)
	types = _types_per_signature(sync_job_type)
	for row in rows:
		row.retrying = int(row.retrying or 0)
		row.no_retries_left = row.count - row.retrying
		row.types = sorted(types.get(row.signature, ()))
		row.cause = row.cause or _("(no recorded cause)")
	return rows


def _types_per_signature(sync_job_type: str | None) -> dict[str, set]:
	condition = "and sync_job_type=%(type)s" if sync_job_type else ""
	found: dict[str, set] = {}
	for signature, job_type in frappe.db.sql(
		f"""select distinct ifnull(error_signature, ''), sync_job_type from `tabSync Job`
		where status=%(failed)s {condition}""",
		{"failed": S.FAILED.value, "type": sync_job_type},
	):
		found.setdefault(signature, set()).add(job_type)
	return found


def jobs_of(signature: str, sync_job_type: str | None = None, limit: int = GROUP_LIMIT) -> list[str]:
	"""Failed jobs of one group, oldest first."""
	condition = "and sync_job_type=%(type)s" if sync_job_type else ""
	return frappe.db.sql_list(
		f"""select name from `tabSync Job` where status=%(failed)s and ifnull(error_signature, '')=%(signature)s
		{condition} order by creation asc limit %(limit)s""",
		{"failed": S.FAILED.value, "signature": signature or "", "type": sync_job_type, "limit": limit},
	)


@frappe.whitelist(methods=["POST"])
def group_action(action: str, signature: str, sync_job_type: str | None = None) -> dict:
	"""Retry or cancel every Failed job of a group; each job is checked for write permission."""
	from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import bulk_action

	if action not in ("retry", "cancel"):
		frappe.throw(_("Unknown action {0}").format(action), SyncJobError)
	if not isinstance(signature, str):
		frappe.throw(_("signature must be text"), SyncJobError)
	frappe.has_permission("Sync Job", "read", throw=True)
	return bulk_action(action, jobs_of(signature, sync_job_type))
