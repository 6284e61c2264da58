"""Is the process running a batch still alive? A lease in Redis, renewed by a thread of that process.

A worker killed with SIGKILL (work horse and all) stops renewing: its lease expires after
`LEASE_SECONDS` and maintenance recovers every job of the batch. The lease is keyed by the
delivery (RQ job id), so it needs no clock comparison.
"""

import contextlib
import threading

import frappe
import redis

LEASE_SECONDS = 15
RENEW_SECONDS = 5


@contextlib.contextmanager
def lease(delivery: str):
	"""Hold the lease of `delivery` while the block runs."""
	connection, key = frappe.cache(), _key(delivery)
	stop = threading.Event()

	def renew():
		while not stop.wait(RENEW_SECONDS):
			with contextlib.suppress(redis.exceptions.RedisError):
				connection.set(key, 1, ex=LEASE_SECONDS)

	with contextlib.suppress(redis.exceptions.RedisError):
		connection.set(key, 1, ex=LEASE_SECONDS)  # before the first claim, not whenever the thread starts
	thread = threading.Thread(target=renew, name=f"sync-job-lease-{delivery}", daemon=True)
	thread.start()
	try:
		yield
	finally:
		stop.set()
		thread.join(5)
		with contextlib.suppress(redis.exceptions.RedisError):
			connection.delete(key)


def is_alive(delivery: str | None) -> bool | None:
	"""True while the lease is held, False when it expired, None when Redis cannot tell
	(it restarted less than a lease ago, so live holders may not have renewed yet)."""
	if not delivery:
		return False
	connection = frappe.cache()
	if connection.get(_key(delivery)) is not None:  # raw get: Frappe's exists() prefixes the key again
		return True
	uptime = connection.info("server").get("uptime_in_seconds", LEASE_SECONDS * 2)
	return None if uptime < LEASE_SECONDS + RENEW_SECONDS else False


def _key(delivery: str) -> str:
	return frappe.cache().make_key(f"sync_tweaks:lease:{delivery}")
