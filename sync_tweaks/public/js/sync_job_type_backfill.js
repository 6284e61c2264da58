// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

// The Sync Job Type form's Backfill button: dry run (by default), filters and limit, then the backfill's form.
frappe.ui.form.on("Sync Job Type", {
	refresh(frm) {
		if (!frm.is_new()) frm.add_custom_button(__("Backfill"), () => ask_backfill(frm));
	},
});

function ask_backfill(frm) {
	frappe.prompt(
		[
			{ fieldname: "dry_run", fieldtype: "Check", label: __("Dry Run"), default: 1, description: __("See what it would do; apply it afterwards.") },
			{
				fieldname: "source_filters",
				fieldtype: "Code",
				options: "JSON",
				label: __("Filters on {0}", [__(frm.doc.source_document_type)]),
				description: __('Empty: every document. Example: {"status": "Open"}'),
			},
			{ fieldname: "limit", fieldtype: "Int", label: __("Limit"), description: __("0: all documents") },
		],
		(values) =>
			frappe
				.xcall("sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill.create_backfill", {
					sync_job_type: frm.doc.name,
					source_filters: values.source_filters || null,
					dry_run: values.dry_run ? 1 : 0,
					limit: values.limit || 0,
				})
				.then((name) => frappe.set_route("Form", "Sync Backfill", name)),
		__("Backfill {0}", [frm.doc.name]),
		__("Start")
	);
}
