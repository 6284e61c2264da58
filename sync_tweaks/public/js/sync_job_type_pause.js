// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt
// Sync Job Type form (loaded through hooks.doctype_js): Pause / Resume, followed live.

function add_pause_button(frm) {
	if (frm.sync_pause_listener) frappe.realtime.off("sync_job_type_paused", frm.sync_pause_listener);
	frm.sync_pause_listener = (data) => {
		if (data.name === frm.doc.name && data.paused !== frm.doc.paused && !frm.is_dirty()) frm.reload_doc();
	};
	frappe.realtime.on("sync_job_type_paused", frm.sync_pause_listener);
	if (frm.doc.paused) {
		const reason = frappe.utils.escape_html(frm.doc.paused_reason || "");
		frm.set_intro(__("Paused: no job of this type starts; new jobs are accepted and wait. {0}", [reason]), "red");
	}
	if (!frm.perm[0] || !frm.perm[0].write) return;
	if (frm.doc.paused) {
		frm.add_custom_button(__("Resume"), () => frm.call("resume").then(() => frm.reload_doc())).addClass("btn-primary");
	} else {
		frm.add_custom_button(__("Pause"), () =>
			frappe.prompt(
				{ fieldname: "reason", fieldtype: "Small Text", label: __("Reason") },
				(values) => frm.call("pause", { reason: values.reason }).then(() => frm.reload_doc()),
				__("Pause {0}", [frm.doc.name]),
				__("Pause")
			)
		);
	}
}
