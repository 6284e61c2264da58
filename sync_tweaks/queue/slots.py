"""Concurrency slots: one Redis lock per concurrency key, held by the job that runs under it."""

import frappe

# a crashed holder blocks its key for at most timeout + GRACE seconds
GRACE = 60

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# 1: took the free slot; 2: this holder has it already (a dispatch that rolled back after taking
# it, or another dispatcher taking the same job right now); 0: someone else holds it
_ACQUIRE = (
	"if redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end "
	"if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('expire', KEYS[1], ARGV[2]) return 2 end return 0"
)
TOOK, HAD = 1, 2
_REFRESH = (
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
)


def grace_seconds() -> int:
	"""Seconds after a job's timeout before its silence counts as lost (site config `sync_job_recovery_grace`)."""
	return int(frappe.conf.get("sync_job_recovery_grace") or GRACE)


def ttl(timeout: int | None) -> int:
	"""How long a job's slot lives: its timeout plus the grace."""
	return (timeout or 300) + grace_seconds()


def acquire(key: str, holder: str, timeout: int | None) -> int:
	"""Take the slot of `key` for `holder` unless someone else holds it: TOOK, HAD or 0."""
	return int(_redis().eval(_ACQUIRE, 1, _name(key), holder, ttl(timeout)))


def acquire_many(claims: list[tuple[str, str, int | None]]) -> list[int]:
	"""`acquire` for many (key, holder, timeout) in one round trip."""
	pipe = _redis().pipeline(transaction=False)
	for key, holder, timeout in claims:
		pipe.eval(_ACQUIRE, 1, _name(key), holder, ttl(timeout))
	return [int(result) for result in pipe.execute()]


def refresh_in(pipe, key: str, holder: str, timeout: int | None):
	"""Extend the slot's lifetime if `holder` still holds it, as a command of the pipeline `pipe`."""
	pipe.eval(_REFRESH, 1, _name(key), holder, ttl(timeout))


def release(key: str, holder: str) -> bool:
	"""Free the slot if `holder` holds it."""
	return bool(_redis().eval(_RELEASE, 1, _name(key), holder))


def release_in(pipe, key: str, holder: str):
	"""`release` as a command of the pipeline `pipe`."""
	pipe.eval(_RELEASE, 1, _name(key), holder)


def holder(key: str) -> str | None:
	value = _redis().get(_name(key))
	return value.decode() if isinstance(value, bytes) else value


def _name(key: str) -> str:
	return _redis().make_key(f"sync_tweaks:slot:{key}")


def _redis():
	return frappe.cache()
