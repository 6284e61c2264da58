"""Which RQ workers are alive: RQ keeps the registration of a SIGKILLed worker for ~7 minutes."""

import os
import socket
from datetime import datetime, timezone

import redis
from frappe.utils.background_jobs import get_queue, get_redis_conn
from rq import Worker


def live_workers(queue: str | None = None) -> list:
	"""Registered workers (of `queue`) whose process exists: checked by pid on this host; on other
	hosts, those whose last heartbeat is younger than their TTL."""
	connection = get_redis_conn()
	found = Worker.all(queue=get_queue(queue)) if queue else Worker.all(connection=connection)
	return [worker for worker in found if is_alive(worker)]


def is_alive(worker) -> bool:
	if worker.hostname == socket.gethostname() and worker.pid:
		try:
			os.kill(worker.pid, 0)
		except ProcessLookupError:
			return False
		except PermissionError:
			return True  # alive, owned by another user
		return True
	heartbeat = worker.last_heartbeat
	if heartbeat is None:
		return True
	age = datetime.now(timezone.utc).replace(tzinfo=None) - heartbeat.replace(tzinfo=None)
	return age.total_seconds() < worker.worker_ttl + 60


def count(queue: str) -> int:
	"""Live workers listening on `queue`; 1 when Redis cannot tell (so batches still spread)."""
	try:
		return len(live_workers(queue))
	except redis.exceptions.RedisError:
		return 1
