import json
import urllib.error
import urllib.request

import frappe

from sync_tweaks.exceptions import SyncJobFatalError, SyncJobRetryAfter


def rate_limit_key(sync_job):
	# the shop limits each endpoint separately: one bucket per endpoint (the type's Rate Limit applies to each)
	return "orders"


def execute(sync_job, source_doc):
	"""Push an order to the shop's API (bypass shape: this controller does its own writing)."""
	if sync_job.dry_run:
		return {"operation": "Update"}
	request = urllib.request.Request(
		frappe.conf.get("shop_api_url") or "https://shop.example.com/api/orders",
		data=json.dumps({"order": source_doc.name, "total": source_doc.get("grand_total")}).encode(),
		method="POST",
		# the job's name is stable across retries and deferrals: the shop drops a repeated request
		headers={"Content-Type": "application/json", "Idempotency-Key": sync_job.name},
	)
	try:
		with urllib.request.urlopen(request, timeout=10) as response:  # never wait forever
			response.read()
	except urllib.error.HTTPError as e:
		if e.code in (429, 503):  # "slow down" / "down for maintenance": wait, no retry used
			wait = e.headers.get("Retry-After", "")
			raise SyncJobRetryAfter(
				float(wait) if wait.isdigit() else 60, f"HTTP {e.code} from the shop"
			) from e
		if 400 <= e.code < 500:  # our request is wrong: retrying cannot fix it
			raise SyncJobFatalError(f"the shop rejected order {source_doc.name}: HTTP {e.code}") from e
		raise  # 5xx: a normal failure, retried per the type's retry policy
	return {"operation": "Update"}
