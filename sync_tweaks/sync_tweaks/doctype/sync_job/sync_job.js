// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

const SYNC_JOB_ACTIONS = {
	start: { label: __("Start"), primary: true },
	cancel_sync: { label: __("Cancel"), ask_reason: true },
	retry: { label: __("Retry"), primary: true },
	dry_run_again: { label: __("Dry Run Again") },
};

frappe.ui.form.on("Sync Job", {
	onload(frm) {
		frappe.realtime.off("sync_job_status");
		frappe.realtime.on("sync_job_status", (data) => {
			if (data.name === frm.doc.name && data.status !== frm.doc.status && !frm.is_dirty()) {
				frm.reload_doc();
			}
		});
	},

	refresh(frm) {
		const actions = (frm.doc.__onload && frm.doc.__onload.allowed_actions) || [];
		actions.forEach((action) => add_action_button(frm, action));
		render_diff(frm);
	},
});

function add_action_button(frm, action) {
	const spec = SYNC_JOB_ACTIONS[action];
	const button = frm.add_custom_button(spec.label, () => {
		if (spec.ask_reason) {
			frappe.prompt(
				{ fieldname: "reason", fieldtype: "Small Text", label: __("Reason") },
				(values) => call_action(frm, action, { reason: values.reason }),
				__("Cancel Sync Job"),
				__("Cancel Job")
			);
		} else {
			call_action(frm, action, {});
		}
	});
	if (spec.primary) button.addClass("btn-primary");
}

function call_action(frm, action, args) {
	frm.call(action, args).then((r) => {
		if (action === "dry_run_again" && r.message) {
			frappe.set_route("Form", "Sync Job", r.message);
		} else {
			frm.reload_doc();
		}
	});
}

function render_diff(frm) {
	const wrapper = frm.get_field("diff_html").$wrapper;
	wrapper.empty();
	if (!frm.doc.diff_summary) return;
	const diff = JSON.parse(frm.doc.diff_summary);
	wrapper.append(sync_tweaks_diff_table(diff));
}

function sync_tweaks_diff_table(diff) {
	const esc = (value) => frappe.utils.escape_html(value === null || value === undefined ? "" : JSON.stringify(value));
	const rows = (diff.changed || []).map((c) => `<tr><td>${esc(c[0])}</td><td>${esc(c[1])}</td><td>${esc(c[2])}</td></tr>`);
	const groups = [
		[__("Rows added"), (diff.added || []).map((a) => `<tr><td>${esc(a[0])}</td><td colspan="2">${esc(a[1])}</td></tr>`)],
		[__("Rows removed"), (diff.removed || []).map((r) => `<tr><td>${esc(r[0])}</td><td colspan="2">${esc(r[1])}</td></tr>`)],
		[
			__("Rows changed"),
			(diff.row_changed || []).flatMap((r) =>
				r[3].map((c) => `<tr><td>${esc(r[0])} #${esc(r[1])} ${esc(c[0])}</td><td>${esc(c[1])}</td><td>${esc(c[2])}</td></tr>`)
			),
		],
	];
	let html = `<table class="table table-bordered table-sm sync-job-diff"><thead><tr><th>${__("Field")}</th><th>${__("Old")}</th><th>${__("New")}</th></tr></thead><tbody>${rows.join("")}`;
	groups.forEach(([title, group]) => {
		if (group.length) html += `<tr><th colspan="3">${title}</th></tr>${group.join("")}`;
	});
	if (!rows.length && groups.every(([, g]) => !g.length)) html += `<tr><td colspan="3">${__("No changes")}</td></tr>`;
	return html + "</tbody></table>";
}
