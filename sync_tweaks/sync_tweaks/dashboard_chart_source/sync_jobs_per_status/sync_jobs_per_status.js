frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["Sync Jobs per Status"] = {
	method: "sync_tweaks.stats.jobs_per_status_chart",
	filters: [
		{
			fieldname: "sync_job_type",
			label: __("Sync Job Type"),
			fieldtype: "Link",
			options: "Sync Job Type",
		},
	],
};
