"""Concurrency slots: one Redis lock per concurrency key, held by the job that runs under it."""

import frappe

# a crashed holder blocks its key for at most timeout + GRACE seconds
GRACE = 60

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_REFRESH = (
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
)


def grace_seconds() -> int:
	return frappe.conf.get("sync_job_recovery_grace") or GRACE


def acquire(key: str, holder: str, ttl: int) -> bool:
	"""Take the slot of `key` for `holder` unless someone holds it."""
	return bool(_redis().set(_name(key), holder, nx=True, ex=max(int(ttl), 1)))


def refresh(key: str, holder: str, ttl: int) -> bool:
	"""Extend the slot's lifetime if `holder` still holds it."""
	return bool(_redis().eval(_REFRESH, 1, _name(key), holder, max(int(ttl), 1)))


def release(key: str, holder: str) -> bool:
	"""Free the slot if `holder` holds it."""
	return bool(_redis().eval(_RELEASE, 1, _name(key), holder))


def holder(key: str) -> str | None:
	value = _redis().get(_name(key))
	return value.decode() if isinstance(value, bytes) else value


def _name(key: str) -> str:
	return _redis().make_key(f"sync_tweaks:slot:{key}")


def _redis():
	return frappe.cache()
