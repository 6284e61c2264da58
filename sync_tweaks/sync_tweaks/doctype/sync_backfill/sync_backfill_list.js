// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

const SYNC_BACKFILL_COLORS = {
	Draft: "gray",
	Creating: "orange",
	Running: "blue",
	Completed: "green",
	Canceled: "darkgrey",
	Failed: "red",
};

frappe.listview_settings["Sync Backfill"] = {
	get_indicator(doc) {
		return [__(doc.status), SYNC_BACKFILL_COLORS[doc.status] || "gray", `status,=,${doc.status}`];
	},
};
