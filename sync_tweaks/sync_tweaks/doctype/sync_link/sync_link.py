# Copyright (c) 2026, sync_tweaks contributors
# For license information, please see license.txt

"""One row per (type, source, target): the last synced state (conflict detection) and the lineage.

Rows are written by the job that syncs the pair, in its own transaction (`record_write` after an
Insert or Update, `record_stop` for a job stopped for review, `forget` after a Delete), so a job that
fails or is rolled back leaves the row as it was.
"""

import hashlib
import json

import frappe
from frappe.model.document import Document
from frappe.utils import now

from sync_tweaks.queue import after_commit

# the cache of doctypes that have links at all: forms of every other doctype pay nothing
LINKED_DOCTYPES_KEY = "sync_tweaks_linked_doctypes"
LINEAGE_EVENT = "sync_lineage"
LINEAGE_LIMIT = 50


class SyncLink(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		kept_state: DF.JSON | None
		last_sync_job: DF.Link | None
		last_synced_at: DF.Datetime | None
		source_document_name: DF.DynamicLink | None
		source_document_type: DF.Link | None
		sync_job_type: DF.Link
		synced_state: DF.JSON | None
		target_document_name: DF.DynamicLink | None
		target_document_type: DF.Link | None
	# end: auto-generated types

	def autoname(self):
		self.name = link_name(
			self.sync_job_type,
			self.source_document_type,
			self.source_document_name,
			self.target_document_type,
			self.target_document_name,
		)


def link_name(sync_job_type, source_type, source_name, target_type, target_name) -> str:
	"""The row's name follows from its pair, so there is never more than one per pair."""
	key = json.dumps([sync_job_type, source_type, source_name, target_type, target_name])
	return hashlib.sha1(key.encode()).hexdigest()[:20]


def job_link_name(job) -> str | None:
	if not (job.target_document_type and job.target_document_name):
		return None
	return link_name(
		job.sync_job_type,
		job.source_document_type,
		job.source_document_name,
		job.target_document_type,
		job.target_document_name,
	)


def load_state(job) -> tuple[dict | None, dict]:
	"""(synced, kept) of the job's pair, read under a row lock; synced is None when never recorded."""
	name = job_link_name(job)
	rows = name and frappe.db.sql(
		"select synced_state, kept_state from `tabSync Link` where name=%s for update", name
	)
	if not rows:
		return None, {}
	job.flags.sync_link_locked = name  # the write after the save needs no second look
	synced, kept = rows[0]
	return (json.loads(synced) if synced else None), (json.loads(kept) if kept else {})


def record_write(job, synced: dict | None, kept: dict | None = None):
	"""After an Insert or Update: the state the sync wrote, and the job as the pair's last."""
	_upsert(
		job,
		last_synced_at=now(),
		synced_state=None if synced is None else json.dumps(synced, separators=(",", ":"), default=str),
		kept_state=json.dumps(kept, separators=(",", ":"), default=str) if kept else None,
	)


def record_stop(job):
	"""A job stopped for review: it becomes the pair's last job; the synced state stays."""
	_upsert(job)


def forget(job):
	"""After a Delete: the target is gone, and so is its link."""
	name = job_link_name(job)
	if name:
		frappe.db.delete("Sync Link", {"name": name})
		_announce(job)


def _upsert(job, **fields):
	name = job_link_name(job)
	if not name:
		return
	fields["last_sync_job"] = job.name
	# not a locking read: on a missing row it would take a gap lock, and two jobs inserting links
	# into the same gap would deadlock (the pair's target lock already orders its writers)
	if job.flags.get("sync_link_locked") == name or frappe.db.sql(
		"select name from `tabSync Link` where name=%s", name
	):
		assignments = ", ".join(f"`{field}`=%({field})s" for field in fields)
		frappe.db.sql(
			f"update `tabSync Link` set {assignments}, modified=%(modified)s where name=%(name)s",
			{**fields, "modified": now(), "name": name},
		)
	else:
		# one plain INSERT: a Document insert would cost every first sync of a pair its validation
		# and hooks, for a record only this module writes (and the query builder's bulk insert
		# costs it more than the statement itself)
		stamp, user = now(), frappe.session.user
		row = {
			"name": name,
			"creation": stamp,
			"modified": stamp,
			"owner": user,
			"modified_by": user,
			"docstatus": 0,
			"idx": 0,
			"sync_job_type": job.sync_job_type,
			"source_document_type": job.source_document_type,
			"source_document_name": job.source_document_name,
			"target_document_type": job.target_document_type,
			"target_document_name": job.target_document_name,
			**fields,
		}
		columns = ", ".join(f"`{column}`" for column in row)
		frappe.db.sql(
			f"insert into `tabSync Link` ({columns}) values ({', '.join(['%s'] * len(row))})",
			list(row.values()),
		)
		known = linked_doctypes()
		if job.source_document_type not in known or job.target_document_type not in known:
			# now, and again after commit: a process may refill the cache before this row is visible
			frappe.cache().delete_value(LINKED_DOCTYPES_KEY)
			frappe.db.after_commit.add(forget_linked_doctypes)
	_announce(job)


def follow_rename(doctype: str, new: str):
	"""After Frappe renamed a document (and with it the links' fields that name it), give its links
	the names of their new pairs; a merge keeps the row the surviving pair already has."""
	if doctype == "Sync Job Type":
		condition = "sync_job_type=%(name)s"
	elif doctype in linked_doctypes():
		condition = """(source_document_type=%(doctype)s and source_document_name=%(name)s)
			or (target_document_type=%(doctype)s and target_document_name=%(name)s)"""
	else:
		return
	rows = frappe.db.sql(
		f"""select name, sync_job_type, source_document_type, source_document_name,
		target_document_type, target_document_name from `tabSync Link` where {condition}""",
		{"doctype": doctype, "name": new},
		as_dict=True,
	)
	for row in rows:
		wanted = link_name(
			row.sync_job_type,
			row.source_document_type,
			row.source_document_name,
			row.target_document_type,
			row.target_document_name,
		)
		if wanted == row.name:
			continue
		if frappe.db.exists("Sync Link", wanted):
			frappe.db.delete("Sync Link", {"name": row.name})
		else:
			frappe.db.sql("update `tabSync Link` set name=%s where name=%s", (wanted, row.name))


def _announce(job):
	"""Open forms of the source and the target refresh their lineage (after commit)."""
	for doctype, name in (
		(job.source_document_type, job.source_document_name),
		(job.target_document_type, job.target_document_name),
	):
		if doctype and name:
			after_commit.announce(LINEAGE_EVENT, {"doctype": doctype, "name": name}, doctype, name)


def forget_linked_doctypes():
	frappe.cache().delete_value(LINKED_DOCTYPES_KEY)


def linked_doctypes() -> set[str]:
	"""Every doctype that is the source or target of a link (cached until a new one appears)."""

	def read() -> list[str]:
		return frappe.db.sql_list(
			"""select distinct source_document_type from `tabSync Link`
			union select distinct target_document_type from `tabSync Link`"""
		)

	return set(frappe.cache().get_value(LINKED_DOCTYPES_KEY, generator=read) or ())


def lineage(doctype: str, name: str) -> list[dict]:
	"""The links of a document as source or target, each with its last job (one indexed query)."""
	columns = """l.sync_job_type, l.last_synced_at, l.source_document_type, l.source_document_name,
		l.target_document_type, l.target_document_name, j.name as job, j.status, j.owner as job_owner,
		j.ended_at, j.modified as job_modified, j.diff_summary, j.conflict_count, j.dry_run"""
	rows = frappe.db.sql(
		f"""select 'source' as side, {columns} from `tabSync Link` l
		left join `tabSync Job` j on j.name = l.last_sync_job
		where l.source_document_type=%(doctype)s and l.source_document_name=%(name)s
		union all
		select 'target' as side, {columns} from `tabSync Link` l
		left join `tabSync Job` j on j.name = l.last_sync_job
		where l.target_document_type=%(doctype)s and l.target_document_name=%(name)s
		limit %(limit)s""",
		{"doctype": doctype, "name": name, "limit": LINEAGE_LIMIT},
		as_dict=True,
	)
	return sorted(rows, key=lambda row: str(row.last_synced_at or row.job_modified or ""), reverse=True)


def on_doctype_update():
	"""Lineage looks links up by source and by target."""
	frappe.db.add_index("Sync Link", ["source_document_type", "source_document_name"], "source_document")
	frappe.db.add_index("Sync Link", ["target_document_type", "target_document_name"], "target_document")
