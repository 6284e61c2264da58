"""Factories and looks shared by the backfill tests."""

import secrets

import frappe
from frappe.utils.background_jobs import get_queue

from sync_tweaks.engine import rollup as pure
from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import act, new_backfill
from tests.utils import make_source

TYPE = "Test Single Sync"
CREATOR = "sync_tweaks.backfill.creation.create_jobs"
CANCELER = "sync_tweaks.backfill.creation.cancel_open_jobs"
# sources of earlier runs stay on a real site: each run filters on its own prefix
RUN = secrets.token_hex(3) + " "


def sources(prefix: str, count: int, **fields) -> list[str]:
	"""`count` committed Sync Test Sources titled `prefix 000`, `prefix 001` …"""
	return [make_source(f"{prefix} {i:03d}", **fields).name for i in range(count)]


def start(prefix: str, dry_run=True, limit=0) -> str:
	"""A started backfill of TYPE over the sources titled `prefix …` (committed)."""
	backfill = new_backfill(TYPE, filters={"title": ["like", prefix + " %"]}, dry_run=dry_run, limit=limit)
	act(backfill.name, "start")
	frappe.db.commit()
	return backfill.name


def stored(name: str):
	frappe.db.rollback()
	return frappe.get_doc("Sync Backfill", name)


def counts_of(backfill) -> dict[str, int]:
	"""The roll-up's non-zero counts per outcome."""
	counts = {outcome: backfill.get(frappe.scrub(outcome) + "_count") for outcome in pure.OUTCOMES}
	return {outcome: count for outcome, count in counts.items() if count}


def jobs_outcomes(name: str) -> dict[str, int]:
	"""What the backfill's jobs did, counted from the jobs themselves."""
	frappe.db.rollback()
	counts: dict[str, int] = {}
	for job in frappe.get_all(
		"Sync Job",
		filters={"sync_backfill": name},
		fields=["status", "operation", "dry_run", "conflict_count", "diff_summary"],
	):
		outcome = pure.outcome_of(
			job.status, job.operation, job.dry_run, job.conflict_count, job.diff_summary
		)
		counts[outcome] = counts.get(outcome, 0) + 1
	return counts


def queued_rq_jobs(method: str, name: str) -> list:
	"""The RQ jobs running `method` for backfill `name` that wait in TYPE's queue."""
	queue = frappe.db.get_value("Sync Job Type", TYPE, "queue") or "default"
	return [
		rq_job
		for rq_job in get_queue(queue).jobs
		if (rq_job.kwargs or {}).get("method") == method
		and ((rq_job.kwargs or {}).get("kwargs") or {}).get("backfill") == name
	]


def lose_creator(name: str):
	"""As when the creator's worker died: its RQ job is gone and its heartbeat old."""
	for rq_job in queued_rq_jobs(CREATOR, name):
		rq_job.delete()
	frappe.db.set_value("Sync Backfill", name, "heartbeat_at", 1)
	frappe.db.commit()
