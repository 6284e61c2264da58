"""A backfill's progress and roll-up as HTML tables, for the Sync Backfill form."""

import json
from urllib.parse import quote

import frappe
from frappe import _
from frappe.utils import escape_html

from sync_tweaks.engine.rollup import CONFLICT, FAILED, OUTCOMES
from sync_tweaks.utils.diff_html import render_diff

DRY_RUN_LABELS = {"Insert": "Would insert", "Update": "Would update", "Delete": "Would delete"}


def render_rollup(backfill) -> str:
	"""Progress, counts per outcome, field changes, failures by cause and sample diffs."""
	if backfill.is_new():
		return ""
	return "".join(
		(
			_progress(backfill),
			_outcomes(backfill),
			_field_changes(backfill),
			_failures(backfill),
			_samples(backfill),
		)
	)


OUTCOME_COLORS = {
	"Insert": "#2fb344",
	"Update": "#2490ef",
	"Delete": "#e24c4c",
	"Unchanged": "#98a2b3",
	"No Target": "#2ab7ca",
	"Conflict": "#e563b2",
	"Failed": "#b42318",
	"Skipped": "#74c0fc",
	"Relayed": "#7c5cff",
	"Canceled": "#525252",
}


def chart_data(backfill) -> dict:
	"""The outcome chart the form draws: a label, count and colour per outcome that occurred."""
	counts = [(o, backfill.get(frappe.scrub(o) + "_count") or 0) for o in OUTCOMES]
	counts = [(outcome, count) for outcome, count in counts if count]
	return {
		"labels": [outcome_label(outcome, backfill.dry_run) for outcome, _count in counts],
		"values": [count for _outcome, count in counts],
		"colors": [OUTCOME_COLORS[outcome] for outcome, _count in counts],
	}


def outcome_label(outcome: str, dry_run: bool) -> str:
	return _(DRY_RUN_LABELS.get(outcome, outcome) if dry_run else outcome)


def _progress(backfill) -> str:
	open_jobs = backfill.jobs_open or 0
	# every job counted so far (relayed children too) and those not done yet
	jobs = open_jobs + sum(backfill.get(frappe.scrub(outcome) + "_count") or 0 for outcome in OUTCOMES)
	bars = [
		(_("Documents selected"), backfill.documents_selected or 0, backfill.total_documents or 0),
		(_("Jobs done"), jobs - open_jobs, jobs),
	]
	rows = "".join(
		f'<div class="mb-2"><div class="small text-muted">{escape_html(label)}: {done} / {whole}</div>'
		f'<div class="progress" style="height: 6px"><div class="progress-bar" role="progressbar" '
		f'style="width: {_percent(done, whole)}%; background-color: var(--{_bar_color(done, whole)})">'
		"</div></div></div>"
		for label, done, whole in bars
	)
	return f'<div class="sync-backfill-progress mb-4">{rows}</div>'


def _bar_color(done: int, whole: int) -> str:
	return "green-500" if whole and done >= whole else "blue-500"


def _percent(done: int, whole: int) -> int:
	return min(100, round(100 * done / whole)) if whole else (100 if done else 0)


def _outcomes(backfill) -> str:
	rows = []
	for outcome in OUTCOMES:
		count = backfill.get(frappe.scrub(outcome) + "_count") or 0
		if not count:
			continue
		if outcome in (FAILED, CONFLICT):
			route = {"sync_backfill": backfill.name, "status": outcome}
		else:
			route = {"sync_backfill": backfill.name, "backfill_outcome": outcome}
		link = f'<a href="/app/sync-job?{_query(route)}">{count}</a>'
		rows.append(
			f"<tr><td>{escape_html(outcome_label(outcome, backfill.dry_run))}</td><td>{link}</td></tr>"
		)
	if backfill.jobs_open:
		rows.append(f"<tr><td>{escape_html(_('Not done yet'))}</td><td>{backfill.jobs_open}</td></tr>")
	if not rows:
		rows.append(f'<tr><td colspan="2">{escape_html(_("No job has ended yet"))}</td></tr>')
	return _table(_("Outcomes"), (_("Outcome"), _("Jobs")), rows, "sync-backfill-outcomes")


def _field_changes(backfill) -> str:
	changes = _json(backfill.field_changes, {})
	if not changes:
		return ""
	meta = frappe.get_meta(_target_type(backfill)) if _target_type(backfill) else None
	rows = [
		f"<tr><td>{escape_html(_label(meta, field))}</td><td>{count}</td></tr>"
		for field, count in changes.items()
	]
	heading = (
		_("Documents changed per field")
		if not backfill.dry_run
		else _("Documents that would change, per field")
	)
	return _table(heading, (_("Field"), _("Documents")), rows, "sync-backfill-fields")


def _failures(backfill) -> str:
	groups = _json(backfill.failure_groups, [])
	if not groups:
		return ""
	rows = []
	for group in groups:
		route = {
			"sync_backfill": backfill.name,
			"status": FAILED,
			"error_signature": group.get("signature") or "",
		}
		rows.append(
			"<tr>"
			f"<td>{escape_html(group.get('title') or group.get('signature') or '')}</td>"
			f'<td><a href="/app/sync-job?{_query(route)}">{group.get("count")}</a></td>'
			f"<td>{group.get('retrying') or 0}</td>"
			f'<td><a href="/app/sync-job/{quote(group.get("example") or "")}">{escape_html(group.get("example") or "")}</a></td>'
			"</tr>"
		)
	return _table(
		_("Failures by cause"),
		(_("Cause"), _("Jobs"), _("Retrying"), _("Example")),
		rows,
		"sync-backfill-failures",
	)


def _samples(backfill) -> str:
	samples = _json(backfill.sample_diffs, [])
	if not samples:
		return ""
	parts = [f"<h5>{escape_html(_('Sample diffs'))}</h5>"]
	for sample in samples:
		name = sample.get("job") or ""
		parts.append(
			f'<div class="sync-backfill-sample mb-3"><div class="mb-1"><a href="/app/sync-job/{quote(name)}">'
			f"{escape_html(sample.get('title') or name)}</a> · "
			f"{escape_html(outcome_label(sample.get('outcome') or '', backfill.dry_run))}</div>"
			f"{render_diff(sample.get('diff'))}</div>"
		)
	return "".join(parts)


def _table(title: str, head: tuple, rows: list[str], css: str) -> str:
	cells = "".join(f"<th>{escape_html(label)}</th>" for label in head)
	return (
		f"<h5>{escape_html(title)}</h5>"
		f'<table class="table table-bordered table-sm {css}"><thead><tr>{cells}</tr></thead>'
		f"<tbody>{''.join(rows)}</tbody></table>"
	)


def _query(route: dict) -> str:
	return "&".join(f"{quote(key)}={quote(str(value))}" for key, value in route.items())


def _json(value, default):
	if not value:
		return default
	return json.loads(value) if isinstance(value, str) else value


def _target_type(backfill) -> str | None:
	return frappe.get_cached_value("Sync Job Type", backfill.sync_job_type, "target_document_type")


def _label(meta, field: str) -> str:
	df = meta.get_field(field) if meta else None
	return f"{_(df.label)} ({field})" if df and df.label else field
