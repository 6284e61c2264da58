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
		if (frm.sync_job_listener) frappe.realtime.off("sync_job_status", frm.sync_job_listener);
		frm.sync_job_listener = (data) => {
			if (data.name === frm.doc.name && data.status !== frm.doc.status && !frm.is_dirty()) {
				frm.reload_doc();
			}
		};
		frappe.realtime.on("sync_job_status", frm.sync_job_listener);
		listen_for_children(frm);
	},

	refresh(frm) {
		// a job is a record of what happened: only a Pending job (not started yet) may be edited
		if (!frm.is_new() && frm.doc.status !== "Pending") frm.disable_form();
		const actions = (frm.doc.__onload && frm.doc.__onload.allowed_actions) || [];
		actions.forEach((action) => add_action_button(frm, action));
		render_diff(frm);
		show_deferred(frm);
		render_children(frm, frm.doc.__onload && frm.doc.__onload.children);
		watch_without_realtime(frm);
	},
});

function watch_without_realtime(frm) {
	// Frappe joins the form to the job's room only over a live socket, and never again after a
	// reconnect: poll while socket.io is down, re-join and check once after a reconnect
	clearInterval(frm.sync_job_poll);
	const name = frm.doc.name;
	// a status the server called final is not polled again (a Retry leaves it, and polling resumes)
	if (frm.is_new() || frm.sync_job_final === `${name}:${frm.doc.status}`) return;
	const joined = frm.sync_job_joined || (frm.sync_job_joined = {});
	const live = () => frappe.realtime.socket && frappe.realtime.socket.connected;
	if (live() && !joined[name]) joined[name] = frappe.realtime.socket.id; // as Frappe joined on load
	const poll = setInterval(() => {
		const route = frappe.get_route() || [];
		if (cur_frm !== frm || frm.doc.name !== name || route[0] !== "Form" || route[2] !== name) {
			clearInterval(poll); // the form was left
			return;
		}
		if (live()) {
			const id = frappe.realtime.socket.id;
			if (joined[name] === id) return;
			if (joined[name]) frappe.realtime.emit("doc_subscribe", frm.doctype, name);
			joined[name] = id;
		}
		frappe.xcall("sync_tweaks.utils.sync_job.get_status", { name }).then((job) => {
			if (job.settled) {
				frm.sync_job_final = `${name}:${job.status}`;
				clearInterval(poll);
			}
			if (frm.doc.name === name && job.status !== frm.doc.status && !frm.is_dirty()) frm.reload_doc();
		}, () => clearInterval(poll));
	}, 3000);
	frm.sync_job_poll = poll;
}

function add_action_button(frm, action) {
	const spec = SYNC_JOB_ACTIONS[action];
	if (!spec) return; // resolve: drawn with the conflicts table (public/js/sync_conflicts.js)
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
	const html = (frm.doc.__onload && frm.doc.__onload.diff_html) || ""; // escaped by utils/diff_html
	frm.get_field("diff_html").$wrapper.html(html);
}
