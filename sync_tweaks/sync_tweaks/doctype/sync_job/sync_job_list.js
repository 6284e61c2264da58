// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

const SYNC_JOB_COLORS = {
	Pending: "gray",
	Waiting: "yellow",
	Queued: "orange",
	Started: "blue",
	Finished: "green",
	Failed: "red",
	Skipped: "light-blue",
	Relayed: "purple",
	"No Target": "cyan",
	Canceled: "darkgrey",
	Conflict: "pink",
};

frappe.listview_settings["Sync Job"] = {
	add_fields: ["status", "sync_job_type", "dry_run", "due_at", "retry_after", "deferred_reason"],
	has_indicator_for_draft: true,

	get_indicator(doc) {
		if (doc.status === "Waiting" && doc.due_at && doc.due_at * 1000 > Date.now()) {
			// deferred by its controller (SyncJobRetryAfter): say until when, and why
			const until = frappe.datetime.str_to_user(doc.retry_after);
			const label = __("Deferred until {0}", [until]) + (doc.deferred_reason ? ` (${frappe.utils.escape_html(doc.deferred_reason)})` : "");
			return [label, "orange", "status,=,Waiting"];
		}
		return [__(doc.status), SYNC_JOB_COLORS[doc.status] || "gray", "status,=," + doc.status];
	},

	onload(listview) {
		// status changes arrive through Frappe's own list_update, which every status change publishes;
		// Frappe then refreshes the changed rows in place without counting again ("0 of 0" above jobs
		// that arrived live), so count once the burst of updates is over
		const count_again = frappe.utils.debounce(() => listview.render_count(), 2500);
		for (const method of ["debounced_refresh", "process_document_refreshes"]) {
			const refresh_changed_rows = listview[method];
			listview[method] = function (...args) {
				count_again();
				return refresh_changed_rows.apply(this, args);
			};
		}
		listview.page.add_action_item(__("Retry"), () => bulk_action(listview, "retry"));
		listview.page.add_action_item(__("Cancel"), () => bulk_action(listview, "cancel"));
		// Conflict jobs: the same choice for every conflicting field, then run again
		listview.page.add_action_item(__("Take Source"), () => bulk_action(listview, "take_source"));
		listview.page.add_action_item(__("Keep Target"), () => bulk_action(listview, "keep_target"));
		if (frappe.user.has_role("System Manager")) {
			listview.page.add_menu_item(__("Clear All Logs"), () => {
				frappe.confirm(__("Delete every Sync Job?"), () =>
					frappe
						.call("sync_tweaks.sync_tweaks.doctype.sync_job.sync_job.clear_all_logs")
						.then(() => listview.refresh())
				);
			});
		}
	},
};

function bulk_action(listview, action) {
	const names = listview.get_checked_items(true);
	frappe
		.call("sync_tweaks.sync_tweaks.doctype.sync_job.sync_job.bulk_action", { action, names })
		.then((r) => {
			const failed = Object.keys(r.message.failed || {});
			frappe.show_alert({
				message: __("{0} done, {1} refused", [r.message.done.length, failed.length]),
				indicator: failed.length ? "orange" : "green",
			});
			listview.clear_checked_items();
			refresh_rows(listview, names);
		});
}

function refresh_rows(listview, names) {
	// what Frappe does on list_update, at once: the bulk action's list_updates may arrive while rows
	// are still selected, and Frappe ignores them then
	listview.pending_document_refreshes = (listview.pending_document_refreshes || []).concat(
		names.map((name) => ({ doctype: listview.doctype, name }))
	);
	listview.process_document_refreshes();
}
