# Copyright (c) 2026, sync_tweaks contributors
# For license information, please see license.txt

from frappe import _

from sync_tweaks import failures


def execute(filters=None):
	"""Failed Sync Jobs grouped by cause: one row per error signature."""
	filters = filters or {}
	columns = [
		{"fieldname": "cause", "label": _("Cause"), "fieldtype": "Data", "width": 420},
		{"fieldname": "count", "label": _("Failed Jobs"), "fieldtype": "Int", "width": 100},
		{"fieldname": "no_retries_left", "label": _("No Retries Left"), "fieldtype": "Int", "width": 130},
		{"fieldname": "retrying", "label": _("Retry Pending"), "fieldtype": "Int", "width": 110},
		{"fieldname": "types", "label": _("Sync Job Types"), "fieldtype": "Data", "width": 200},
		{"fieldname": "first_seen", "label": _("First Seen"), "fieldtype": "Datetime", "width": 160},
		{"fieldname": "last_seen", "label": _("Last Seen"), "fieldtype": "Datetime", "width": 160},
		{"fieldname": "signature", "label": _("Signature"), "fieldtype": "Data", "width": 150},
	]
	rows = failures.groups(filters.get("sync_job_type"))
	for row in rows:
		row["types"] = ", ".join(row["types"])
	return columns, rows
