// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

// Lineage on any form (sync_tweaks.lineage): the Sync Job Types that link the document as source or
// target, the last job of each (status, when, who, diff) and a link to all of its jobs.

const SYNC_LINEAGE_COLORS = {
	Finished: "green",
	Failed: "red",
	Skipped: "light-blue",
	Conflict: "pink",
	Canceled: "darkgrey",
};

$(document).on("form-refresh", (event, frm) => {
	// frappe.realtime drops listeners added before Desk created its socket: listen on first use
	if (!window.sync_lineage_listening && frappe.realtime.socket) {
		window.sync_lineage_listening = true;
		frappe.realtime.on("sync_lineage", refresh_sync_lineage);
	}
	render_sync_lineage(frm);
});

function refresh_sync_lineage(data) {
	const frm = window.cur_frm;
	if (!frm || frm.doctype !== data.doctype || frm.docname !== data.name) return;
	frappe
		.xcall("sync_tweaks.lineage.get_lineage", { doctype: frm.doctype, name: frm.docname })
		.then((rows) => {
			frm.doc.__onload = frm.doc.__onload || {};
			frm.doc.__onload.sync_lineage = rows;
			render_sync_lineage(frm);
		});
}

function render_sync_lineage(frm) {
	if (!frm.dashboard || !frm.dashboard.parent) return;
	frm.dashboard.parent.find(".sync-lineage").remove();
	const rows = (frm.doc.__onload && frm.doc.__onload.sync_lineage) || [];
	if (frm.is_new() || !rows.length) return;
	const body = rows.map((row) => sync_lineage_row(row)).join("");
	const html = `<table class="table table-sm table-bordered sync-lineage-table">
		<thead><tr><th>${__("Sync Job Type")}</th><th>${__("Linked Document")}</th>
		<th>${__("Last Job")}</th><th>${__("When")}</th><th>${__("By")}</th><th></th></tr></thead>
		<tbody>${body}</tbody></table>`;
	frm.dashboard.add_section(html, __("Sync Lineage"), "custom sync-lineage");
	frm.dashboard.show();
}

function sync_lineage_row(row) {
	const esc = frappe.utils.escape_html;
	const role = row.side === "source" ? __("Target") : __("Source");
	// no name: the user may not read the other document (the server hides it)
	const other = row.other_name
		? `${esc(role)}: <a href="/app/${frappe.router.slug(row.other_doctype)}/${encodeURIComponent(
				row.other_name
		  )}">${esc(row.other_doctype)} ${esc(row.other_name)}</a>`
		: `${esc(role)}: ${esc(row.other_doctype)} <span class="text-muted">${esc(__("(not permitted)"))}</span>`;
	const status = row.status
		? `<span class="indicator-pill ${SYNC_LINEAGE_COLORS[row.status] || "gray"}">${esc(
				__(row.status)
		  )}</span> <a href="/app/sync-job/${encodeURIComponent(row.job)}">${esc(row.job)}</a>`
		: "";
	const conflicts = row.conflict_count ? ` · ${esc(__("{0} conflict(s)", [row.conflict_count]))}` : "";
	const query = new URLSearchParams({ sync_job_type: row.sync_job_type, ...row.jobs_filter });
	const diff = row.diff_html // escaped on the server (sync_tweaks.utils.diff_html)
		? `<details><summary>${__("Diff")}</summary>${row.diff_html}</details>`
		: "";
	return `<tr><td>${esc(row.sync_job_type)}</td><td>${other}</td><td>${status}${conflicts}${diff}</td>
		<td>${row.when ? esc(frappe.datetime.str_to_user(row.when)) : ""}</td><td>${esc(row.owner || "")}</td>
		<td><a href="/app/sync-job?${query.toString()}">${__("All jobs")}</a></td></tr>`;
}
