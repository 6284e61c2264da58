"""Pure sync logic with no Frappe in it: status table, requests, diffs, backoff, controller shapes."""
