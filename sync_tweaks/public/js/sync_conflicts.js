// Copyright (c) 2026, sync_tweaks contributors
// For license information, please see license.txt

// The conflicts of a Sync Job (sync_tweaks.engine.conflicts): last synced / target now / source
// wants per field; a Conflict job offers a choice per field and re-runs with the decisions.

frappe.ui.form.on("Sync Job", {
	refresh(frm) {
		const field = frm.get_field("conflicts_html");
		if (!field) return;
		const conflicts = (frm.doc.__onload && frm.doc.__onload.conflicts) || [];
		const actions = (frm.doc.__onload && frm.doc.__onload.allowed_actions) || [];
		const open = actions.includes("resolve");
		field.$wrapper.html(conflicts.length ? sync_conflicts_table(conflicts, open) : "");
		if (!open) return;
		frm.add_custom_button(__("Resolve and Run Again"), () => sync_conflicts_resolve(frm, field))
			.addClass("btn-primary");
		for (const [choice, label] of [["source", __("Take Source")], ["target", __("Keep Target")]]) {
			frm.add_custom_button(label, () => {
				field.$wrapper.find(`input[type=radio][value=${choice}]`).prop("checked", true);
			}, __("Choose for All"));
		}
	},
});

function sync_conflicts_table(conflicts, open) {
	const esc = frappe.utils.escape_html;
	const show = (value) =>
		value === null || value === undefined
			? `<span class="text-muted">${__("empty")}</span>`
			: esc(typeof value === "string" ? value : JSON.stringify(value));
	const chosen = { source: __("Took source"), target: __("Kept target") };
	const rows = conflicts.map((c, i) => {
		const choice = c.choice
			? esc(chosen[c.choice])
			: open
			? ["source", "target"]
					.map((value) => `<label class="sync-conflict-choice"><input type="radio"
						name="sync-conflict-${i}" value="${value}" data-path="${esc(c.path)}">
						${value === "source" ? __("Take source") : __("Keep target")}</label>`)
					.join(" ")
			: `<span class="text-muted">${__("Waiting for review")}</span>`;
		return `<tr data-path="${esc(c.path)}"><td>${esc(c.label || c.path)}</td><td>${show(c.synced)}</td>
			<td>${show(c.now)}</td><td>${show(c.wants)}</td><td>${choice}</td></tr>`;
	});
	return `<table class="table table-bordered table-sm sync-job-conflicts"><thead><tr>
		<th>${__("Field")}</th><th>${__("Last Synced")}</th><th>${__("Target Now")}</th>
		<th>${__("Source Wants")}</th><th>${__("Choice")}</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function sync_conflicts_resolve(frm, field) {
	const decisions = {};
	field.$wrapper.find("input[type=radio]:checked").each((i, input) => {
		decisions[input.dataset.path] = input.value;
	});
	frm.call("resolve", { decisions }).then(() => frm.reload_doc());
}
