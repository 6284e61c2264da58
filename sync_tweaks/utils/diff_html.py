"""A diff in Frappe's Version format as a readable HTML table, for the Sync Job form and Desk dialogs."""

import json

from frappe import _
from frappe.utils import escape_html


def render_diff(diff: dict | str | None, conflicts: bool = True) -> str:
	"""Field / old / new rows, then child-table rows grouped as added, removed and changed; then the
	conflicts (unless the caller shows them itself, as the Sync Job form does)."""
	if not diff:
		return ""
	if isinstance(diff, str):
		diff = json.loads(diff)
	rows = [_row(field, old, new) for field, old, new in diff.get("changed") or []]
	groups = (
		(_("Rows added"), [_row(table, None, row) for table, row in diff.get("added") or []]),
		(_("Rows removed"), [_row(table, row, None) for table, row in diff.get("removed") or []]),
		(
			_("Rows changed"),
			[
				_row(f"{table} #{idx} · {field}", old, new)
				for table, idx, _name, changes in diff.get("row_changed") or []
				for field, old, new in changes
			],
		),
	)
	for title, group in groups:
		if group:
			rows.append(f'<tr><th colspan="3">{escape_html(title)}</th></tr>')
			rows.extend(group)
	if not rows:
		rows.append(f'<tr><td colspan="3">{escape_html(_("No changes"))}</td></tr>')
	head = "".join(f"<th>{escape_html(label)}</th>" for label in (_("Field"), _("Old"), _("New")))
	return (
		'<table class="table table-bordered table-sm sync-job-diff">'
		f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
	) + (render_conflicts(diff.get("conflicts")) if conflicts else "")


CHOICE_LABELS = {"source": "Took source", "target": "Kept target", None: "Waiting for review"}


def render_conflicts(conflicts: list[dict] | None) -> str:
	"""The conflicts marked in a diff: field, last synced, target now, source wants, choice."""
	if not conflicts:
		return ""
	labels = (_("Conflict"), _("Last Synced"), _("Target Now"), _("Source Wants"), _("Choice"))
	head = "".join(f"<th>{escape_html(label)}</th>" for label in labels)
	rows = "".join(
		"<tr>"
		+ "".join(
			f"<td>{cell}</td>"
			for cell in (
				escape_html(conflict.get("path") or ""),
				_value(conflict.get("synced")),
				_value(conflict.get("now")),
				_value(conflict.get("wants")),
				escape_html(_(CHOICE_LABELS.get(conflict.get("choice"), ""))),
			)
		)
		+ "</tr>"
		for conflict in conflicts
	)
	return (
		'<table class="table table-bordered table-sm sync-job-conflicts">'
		f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
	)


def _row(label, old, new) -> str:
	return f"<tr><td>{escape_html(str(label))}</td><td>{_value(old)}</td><td>{_value(new)}</td></tr>"


def _value(value) -> str:
	if value is None:
		return ""
	text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
	return escape_html(text)
