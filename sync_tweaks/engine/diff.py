"""Diffs between two plain snapshots of a document, in Frappe's Version format.

A snapshot is `{"fields": {field: value}, "tables": {table: [row, ...]}}` with JSON-safe values
(see `sync_tweaks.utils.snapshot`). The result reads like every other change log in Frappe:
`{"changed": [[field, old, new]], "added": [[table, row]], "removed": [[table, row]],
"row_changed": [[table, idx, row_name, [[field, old, new]]]]}`.
"""

from typing import Any

EMPTY = {"fields": {}, "tables": {}}


def diff_snapshots(old: dict | None, new: dict | None) -> dict[str, list]:
	"""The Version-format diff from `old` to `new`; None stands for "no document"."""
	result = {"changed": [], "added": [], "removed": [], "row_changed": []}
	if old is None or new is None:
		# an insert or a delete: every set field, against nothing
		old, new = _drop_empty(old or EMPTY), _drop_empty(new or EMPTY)
	result["changed"] = _changed_fields(old["fields"], new["fields"])

	for table in sorted(set(old["tables"]) | set(new["tables"])):
		old_rows = old["tables"].get(table) or []
		new_rows = new["tables"].get(table) or []
		old_by_name = {row.get("name"): row for row in old_rows if row.get("name")}
		new_names = {row.get("name") for row in new_rows if row.get("name")}
		for row in new_rows:
			previous = old_by_name.get(row.get("name"))
			if previous is None:
				result["added"].append([table, row])
				continue
			changes = _changed_fields(_row_values(previous), _row_values(row))
			if changes:
				result["row_changed"].append([table, row.get("idx"), row.get("name"), changes])
		for row in old_rows:
			if row.get("name") not in new_names:
				result["removed"].append([table, row])
	return result


def is_empty(diff: dict[str, list]) -> bool:
	return not any(diff.get(key) for key in ("changed", "added", "removed", "row_changed"))


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[list]:
	"""[[field, old, new]] for every field whose value differs, in field order of `new` then `old`."""
	# imported here: deepdiff costs every forked worker ~30 ms at import, and most jobs never diff twice
	from deepdiff import DeepDiff

	delta = DeepDiff(old, new, ignore_order=False, verbose_level=2, ignore_numeric_type_changes=True)
	touched = set()
	for key in ("values_changed", "type_changes", "dictionary_item_added", "dictionary_item_removed"):
		for path in delta.get(key, {}):
			touched.update(set(old) | set(new) if path == "root" else {_top_key(path)})
	ordered = [key for key in new if key in touched] + [
		key for key in old if key in touched and key not in new
	]
	return [[key, old.get(key), new.get(key)] for key in ordered]


def _drop_empty(snapshot: dict) -> dict:
	fields = {key: value for key, value in snapshot["fields"].items() if value not in (None, "")}
	return {"fields": fields, "tables": snapshot["tables"]}


def _row_values(row: dict) -> dict:
	return {key: value for key, value in row.items() if key not in ("name", "idx")}


def _top_key(path: str) -> str:
	# deepdiff paths look like root['field'] or root['field'][0]
	return path[len("root['") :].split("']", 1)[0]
