// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

frappe.ui.form.on("Sync Job Type", {
	onload(frm) {
		if (frm.is_new() && !frm.doc.is_standard) {
			const standard = frappe.boot.developer_mode && frappe.session.user === "Administrator";
			frm.set_value("is_standard", standard ? "Yes" : "No");
		}
	},

	refresh(frm) {
		const onload = frm.doc.__onload || {};
		const missing = !frm.is_new() && onload.controller_exists === false;
		const intro = missing
			? __("The controller {0} does not exist yet. Save this type in developer mode as Administrator to generate it.", [
					`<code>${frappe.utils.escape_html(onload.controller_path || "")}</code>`,
			  ])
			: "";
		if (intro) frm.set_intro(intro, "orange");
		if (frm.is_new()) return;
		add_pause_button(frm); // public/js/sync_job_type_pause.js
		frm.add_custom_button(__("Jobs"), () => frappe.set_route("List", "Sync Job", { sync_job_type: frm.doc.name }));
		frm.add_custom_button(__("Dry Run"), () => ask_source_and_enqueue(frm, true));
		frm.add_custom_button(__("Enqueue"), () => ask_source_and_enqueue(frm, false));
		show_doctor_banner(frm, intro, missing);
	},
});
function show_doctor_banner(frm, intro, missing) {
	const name = frm.doc.name;
	frappe
		.xcall("sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type.get_doctor_findings", { sync_job_type: name })
		.then((findings) => {
			// the missing controller is already explained by the intro
			findings = findings.filter((f) => !(missing && f.check === "controller"));
			if (frm.doc.name !== name || !findings.length) return;
			const esc = frappe.utils.escape_html;
			const items = findings.map((f) => `<li>${esc(f.problem)}<br><span class="text-muted">${__("Fix")}: ${esc(f.fix)}</span></li>`);
			frm.dashboard.clear_headline();
			frm.dashboard.set_headline_alert(
				`${intro ? `<p>${intro}</p>` : ""}<b>${__("Sync Job doctor")}</b><ul class="mb-0">${items.join("")}</ul>`,
				"red"
			);
		});
}

function ask_source_and_enqueue(frm, dry_run) {
	frappe.prompt(
		{
			fieldname: "source_document_name",
			fieldtype: "Link",
			options: frm.doc.source_document_type,
			label: __(frm.doc.source_document_type),
			reqd: 1,
		},
		(values) =>
			frappe
				.call({
					method: "sync_tweaks.utils.sync_job.enqueue",
					args: { sync_job_type: frm.doc.name, source_document_name: values.source_document_name, dry_run: dry_run ? 1 : 0 },
				})
				.then((r) => follow_job(r.message.name)),
		dry_run ? __("Dry Run") : __("Enqueue")
	);
}

function follow_job(name) {
	// realtime from the job's room for prompt updates, a 3 s poll for what it misses (socket.io
	// down, changes before the room is joined); both end at a final status or when the dialog closes
	const dialog = new frappe.ui.Dialog({ title: __("Sync Job {0}", [name]), size: "large" });
	const body = $(dialog.body);
	const realtime = frappe.realtime;
	let poll = null;
	const stop = () => {
		if (!poll) return;
		clearInterval(poll);
		poll = null;
		realtime.off("sync_job_status", listener);
		// an open form of this job keeps the room it joined
		const form_has_room = realtime.open_docs.has(`Sync Job:${name}`);
		if (realtime.socket && !form_has_room) realtime.emit("doc_unsubscribe", "Sync Job", name);
	};
	const show = () =>
		frappe.xcall("sync_tweaks.utils.sync_job.get_status", { name }).then((job) => {
			body.html(
				`<p>${__("Status")}: <b>${__(job.status)}</b> · <a href="/app/sync-job/${encodeURIComponent(name)}">${__("Open")}</a></p>`
			);
			if (job.error_message) body.append($("<pre>").text(job.error_message));
			body.append(job.diff_html || "");
			if (job.settled) stop();
		}, stop);
	const listener = (data) => data.name === name && show();
	realtime.on("sync_job_status", listener);
	if (realtime.socket) realtime.emit("doc_subscribe", "Sync Job", name);
	poll = setInterval(show, 3000);
	dialog.onhide = stop;
	dialog.show();
	show();
}
