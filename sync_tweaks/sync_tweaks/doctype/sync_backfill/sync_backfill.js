// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

const SYNC_BACKFILL_ACTIONS = {
	start: { label: __("Start"), method: "start_backfill", primary: true },
	cancel: { label: __("Cancel"), method: "cancel_backfill", confirm: __("Stop creating jobs and cancel the jobs that have not started?") },
	resume: { label: __("Resume"), method: "resume_backfill" },
	apply: { label: __("Apply"), method: "apply_backfill", primary: true },
};

frappe.ui.form.on("Sync Backfill", {
	onload(frm) {
		if (frm.sync_backfill_listener) frappe.realtime.off("sync_backfill_progress", frm.sync_backfill_listener);
		// the roll-up folds at most once a second: reload at most that often too
		frm.sync_backfill_listener = frappe.utils.throttle((data) => {
			if (data.name === frm.doc.name && !frm.is_dirty()) frm.reload_doc();
		}, 1000);
		frappe.realtime.on("sync_backfill_progress", frm.sync_backfill_listener);
	},

	refresh(frm) {
		if (!frm.is_new() && frm.doc.status !== "Draft") frm.disable_form();
		const onload = frm.doc.__onload || {};
		(onload.allowed_actions || []).forEach((action) => add_backfill_button(frm, action));
		if (!frm.is_new()) {
			frm.add_custom_button(__("Jobs"), () => frappe.set_route("List", "Sync Job", { sync_backfill: frm.doc.name }));
		}
		const wrapper = frm.get_field("rollup_html").$wrapper;
		wrapper.html(onload.rollup_html || ""); // escaped by the server; not a microtemplate
		draw_outcome_chart(frm, wrapper);
		poll_while_open(frm);
	},
});

const SYNC_BACKFILL_WATCHED = ["status", "jobs_created", "jobs_open", "documents_selected"];

function poll_while_open(frm) {
	// realtime events sent before the form joined the backfill's room (or while socket.io is
	// down) are lost: a 5 s poll catches what they missed, until the backfill has ended
	clearInterval(frm.sync_backfill_poll);
	if (frm.is_new() || !(frm.doc.__onload || {}).following) return;
	const name = frm.doc.name;
	frm.sync_backfill_poll = setInterval(() => {
		if (cur_frm !== frm || frm.doc.name !== name) return clearInterval(frm.sync_backfill_poll);
		frappe.db.get_value("Sync Backfill", name, SYNC_BACKFILL_WATCHED).then((r) => {
			const stored = r.message || {};
			const moved = SYNC_BACKFILL_WATCHED.some((field) => stored[field] !== undefined && stored[field] !== frm.doc[field]);
			if (moved && frm.doc.name === name && !frm.is_dirty()) frm.reload_doc();
		});
	}, 5000);
}

function add_backfill_button(frm, action) {
	const spec = SYNC_BACKFILL_ACTIONS[action];
	const run = (args) =>
		// frozen while it runs: a second click cannot apply (or cancel) twice
		frm.call({ doc: frm.doc, method: spec.method, args, freeze: true }).then((r) => {
			if (action === "apply" && r.message) frappe.set_route("Form", "Sync Backfill", r.message);
			else frm.reload_doc();
		});
	const button = frm.add_custom_button(spec.label, () => {
		if (action === "apply") {
			frappe.prompt(
				{ fieldname: "only_changes", fieldtype: "Check", label: __("Only documents that would change"), default: 1 },
				(values) => run({ only_changes: values.only_changes }),
				__("Apply Dry Run"),
				__("Create Real Jobs")
			);
		} else if (spec.confirm) {
			frappe.confirm(spec.confirm, () => run({}));
		} else {
			run({});
		}
	});
	if (spec.primary) button.addClass("btn-primary");
}

function draw_outcome_chart(frm, wrapper) {
	const chart = (frm.doc.__onload || {}).rollup_chart;
	if (!chart || !chart.values.length || !frappe.Chart) return;
	const area = $('<div class="sync-backfill-chart mb-3"></div>');
	wrapper.find(".sync-backfill-outcomes").before(area);
	new frappe.Chart(area[0], {
		type: "percentage",
		height: 120,
		data: { labels: chart.labels, datasets: [{ name: __("Jobs"), values: chart.values }] },
		colors: chart.colors,
	});
}
