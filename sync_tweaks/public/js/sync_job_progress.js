// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt
// Sync Job form (loaded through hooks.doctype_js): a deferred job's wait, a relayed parent's children.

function show_deferred(frm) {
	const deferred = frm.doc.__onload && frm.doc.__onload.deferred;
	if (!deferred) return;
	const until = frappe.datetime.str_to_user(deferred.until);
	const reason = deferred.reason ? ` (${frappe.utils.escape_html(deferred.reason)})` : "";
	frm.set_intro(__("Deferred until {0}{1}", [until, reason]), "orange");
}

function listen_for_children(frm) {
	// each child's status change is published to the parent's room too
	if (frm.sync_children_listener) frappe.realtime.off("sync_job_children", frm.sync_children_listener);
	frm.sync_children_listener = (data) => data.name === frm.doc.name && refresh_children(frm);
	frappe.realtime.on("sync_job_children", frm.sync_children_listener);
}

function refresh_children(frm) {
	frappe
		.xcall("sync_tweaks.sync_tweaks.doctype.sync_job.sync_job.get_children_progress", { name: frm.doc.name })
		.then((progress) => render_children(frm, progress));
}

function render_children(frm, progress) {
	const wrapper = frm.get_field("children_progress").$wrapper;
	if (!progress || !progress.total) {
		wrapper.empty();
		return;
	}
	const parts = [__("{0} of {1} children done", [progress.done, progress.total])];
	if (progress.failed) parts.push(__("{0} failed", [progress.failed]));
	if (progress.retrying) parts.push(__("{0} waiting for a retry", [progress.retrying]));
	const percent = Math.round((100 * progress.done) / progress.total);
	const color = progress.failed ? "bg-danger" : progress.done === progress.total ? "bg-success" : "bg-info";
	wrapper.html(
		`<div class="sync-job-children mb-3"><div class="mb-1">${parts.join(", ")}</div>` +
			`<div class="progress" style="height: 8px"><div class="progress-bar ${color}" style="width: ${percent}%"></div></div></div>`
	);
}
