// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

frappe.query_reports["Sync Job Failures"] = {
	filters: [{ fieldname: "sync_job_type", label: __("Sync Job Type"), fieldtype: "Link", options: "Sync Job Type" }],

	get_datatable_options(options) {
		return Object.assign(options, { checkboxColumn: true });
	},

	onload(report) {
		report.page.add_inner_button(__("Retry All"), () => group_action(report, "retry"));
		report.page.add_inner_button(__("Cancel All"), () => group_action(report, "cancel"));
		// a job failing or being retried elsewhere changes the groups: refresh (at most every 3 s)
		const refresh = frappe.utils.debounce(() => report.refresh(), 3000);
		frappe.realtime.on("list_update", (data) => data && data.doctype === "Sync Job" && refresh());
	},

	formatter(value, row, column, data, default_formatter) {
		// causes quote exception messages: text, never HTML
		if (column.fieldname === "cause") return frappe.utils.escape_html(value || "");
		value = default_formatter(value, row, column, data);
		if (column.fieldname === "no_retries_left" && data && data.no_retries_left) {
			value = `<span class="indicator-pill red">${cint(data.no_retries_left)}&nbsp;${__("no retries left")}</span>`;
		}
		return value;
	},
};

function group_action(report, action) {
	const checked = report.datatable.rowmanager.getCheckedRows().map((i) => report.data[i]);
	if (!checked.length) {
		frappe.msgprint(__("Select one or more groups first"));
		return;
	}
	const count = checked.reduce((sum, row) => sum + row.count, 0);
	const question = action === "retry" ? __("Retry {0} failed Sync Jobs?", [count]) : __("Cancel {0} failed Sync Jobs?", [count]);
	frappe.confirm(question, () => {
		const type = report.get_filter_value("sync_job_type");
		Promise.all(
			checked.map((row) =>
				frappe.xcall("sync_tweaks.failures.group_action", { action, signature: row.signature, sync_job_type: type || null })
			)
		).then((results) => {
			const done = results.reduce((sum, r) => sum + r.done.length, 0);
			const refused = results.reduce((sum, r) => sum + Object.keys(r.failed).length, 0);
			frappe.show_alert({ message: __("{0} done, {1} refused", [done, refused]), indicator: refused ? "orange" : "green" });
			report.refresh();
		});
	});
}
