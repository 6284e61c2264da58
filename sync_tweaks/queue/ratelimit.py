"""Rate limits: at most `rate_limit` starts of a type (or of one `rate_limit_key`) per `rate_period`.

Each bucket is a sliding-window log in Redis (a sorted set of start times), changed only by Lua
scripts, so every worker on every machine shares it atomically. The worker's claim takes a token at
the moment it stamps `started_at` (the same epoch), so no window of `rate_period` seconds ever holds
more than `rate_limit` recorded starts. The dispatcher only peeks: it pushes no more jobs of a bucket
than it has free tokens, and a job it holds back stays Waiting (no retry used).

The wake-up. Frappe runs RQ without RQ's scheduler and the maintenance runs once a minute, so
something must be awake when the next token frees. That is the *waker*: one RQ job per queue (a
Redis lock), armed by the dispatcher with the earliest time a held-back job may start (the next
token, or a deferral's due time) when that is within `HORIZON` seconds. It blocks in Redis (BLPOP on
a signal list, no CPU, no database locks) until then, takes the jobs that may start through the
dispatcher's own selection and runs them in its warm process (no second RQ round trip, so starts
follow the tokens closely), and ends when nothing waits on a clock or after `LIFETIME` seconds,
re-arming itself if work is still held back. It also waits on its RQ queue: when another RQ job
arrives there, it puts it back at the head and ends, so it never keeps a worker from other work (a
new waker is queued behind that job). Later waits are left to the minute's maintenance.
"""

from functools import partial

import frappe

from sync_tweaks.queue import clock, timeouts

HORIZON = 60
LIFETIME = 45
# the waker takes jobs this much before their token frees; their claim waits out the rest (in the
# waker's process only), so starts follow the tokens instead of lagging a dispatch behind them
LEAD = 0.3
# the shortest wait after a wake-up that found nothing to take
IDLE_WAIT = 0.05
# how long dispatchers push rate-limited jobs to every worker after the waker fell behind
HELP_SECONDS = 10
WAKER = "sync_tweaks.queue.ratelimit.serve"
# set while the waker runs jobs: how long their claim may wait for a token (nowhere else)
TOKEN_WAIT = "sync_tweaks_token_wait"

# KEYS[1]: the bucket's log. ARGV: now, limit, period, member. Takes a token at `now`:
# returns {1, 0} when taken, {0, seconds until the next token frees} when refused.
_TAKE = """
local now, limit, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('zremrangebyscore', KEYS[1], '-inf', now - period)
local n = redis.call('zcard', KEYS[1])
if n < limit then
	redis.call('zadd', KEYS[1], now, ARGV[4])
	redis.call('expire', KEYS[1], math.ceil(period) + 1)
	return {1, '0'}
end
local oldest = redis.call('zrange', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + period - now)}
"""
# Peeks at epoch `at` (now, or a moment ahead): changes nothing. ARGV: at, limit, period.
# Returns {tokens free at `at`, seconds from `at` until the next token frees once those are used}.
_PEEK = """
local at, limit, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local live = redis.call('zrangebyscore', KEYS[1], '(' .. tostring(at - period), '+inf', 'WITHSCORES')
local n = #live / 2
if n == 0 then return {limit, tostring(period)} end
if n < limit then return {limit - n, tostring(tonumber(live[2]) + period - at)} end
return {0, tostring(tonumber(live[2 * (n - limit) + 2]) + period - at)}
"""
# keep the earliest wake-up time of a queue
_WAKE_MIN = """
local current = redis.call('get', KEYS[1])
if (not current) or tonumber(ARGV[1]) < tonumber(current) then
	redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
	return 1
end
return 0
"""
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_HANDOVER = (
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end "
	"return false"
)
_WAKE_CLEAR = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def limit_of(job_type) -> tuple[int, float] | None:
	"""(limit, period seconds) of a type, or None when it has no rate limit."""
	if not job_type or not (job_type.get("rate_limit") or 0) > 0:
		return None
	return int(job_type.rate_limit), float(max(job_type.get("rate_period") or 1, 1))


def bucket(job_type, job) -> str:
	"""The bucket a job counts in: its type, split by the controller hook `rate_limit_key(sync_job)`.
	`job` may be a callable returning the job, called only when the hook exists."""
	hook = key_hook(job_type)
	if not hook:
		return job_type.name
	key = hook(job() if callable(job) else job)
	return f"{job_type.name}\x1f{key}" if key not in (None, "") else job_type.name


def key_hook(job_type):
	"""The controller's `rate_limit_key`, or None (also for a controller that does not load: such a
	job fails at its start, counted under the type's limit)."""
	from sync_tweaks import controller

	try:
		module, _shape = controller.load(job_type)
	except Exception:
		frappe.clear_last_message()
		return None
	return getattr(module, "rate_limit_key", None)


def take(name: str, limits: tuple[int, float], holder: str, now: float) -> float:
	"""Take a token of bucket `name` at epoch `now` for `holder`: 0 when taken, else seconds to wait."""
	limit, period = limits
	taken, wait = _redis().eval(_TAKE, 1, _key(name), repr(now), limit, repr(period), f"{holder}@{now}")
	return 0.0 if int(taken) else max(float(wait), 0.001)


def peek(name: str, limits: tuple[int, float], at: float | None = None) -> tuple[int, float]:
	"""(tokens free at epoch `at` (default now), seconds from `at` until one more frees once those
	free ones are used)."""
	limit, period = limits
	free, wait = _redis().eval(_PEEK, 1, _key(name), repr(at or clock.now()), limit, repr(period))
	return int(free), float(wait)


# the waker


def arm(queue: str, at: float):
	"""Make sure something dispatches `queue` at epoch `at` (a token frees, a deferral is due)."""
	if at - clock.now() > HORIZON:
		return  # the minute's maintenance is early enough
	if _redis().eval(_WAKE_MIN, 1, _wake_key(queue), repr(at), HORIZON + LIFETIME):
		from frappe.utils.background_jobs import get_redis_conn

		# wake a waiting waker to wait for the earlier time (the signal lives next to RQ's queues)
		pipe = get_redis_conn().pipeline()
		pipe.lpush(_signal_key(queue), 1).ltrim(_signal_key(queue), 0, 0).expire(_signal_key(queue), HORIZON)
		pipe.execute()
	frappe.db.after_commit.add(partial(start_waker, queue))


def start_waker(queue: str, handover: str | None = None):
	"""Push a waker for `queue` unless one is alive (its lock outlives its LIFETIME by a margin);
	`handover`: the token of the ending waker, which passes its lock on to its successor."""
	cache, token = _redis(), frappe.generate_hash(length=12)
	if handover:
		if not cache.eval(_HANDOVER, 1, _lock_key(queue), handover, token, LIFETIME + 30):
			return  # not ours any more: whoever holds it serves the queue
	elif not cache.set(_lock_key(queue), token, nx=True, ex=LIFETIME + 30):
		return
	try:
		frappe.enqueue(
			WAKER,
			queue=queue,
			timeout=waker_timeout(),
			job_id="sync-waker-" + token,
			sync_queue=queue,
			token=token,
		)
	except Exception:
		cache.eval(_RELEASE, 1, _lock_key(queue), token)
		frappe.log_error(title="Sync Job waker could not be queued")


def waker_timeout() -> int:
	"""RQ's limit for a waker: its lifetime, and room to run a batch of the longest rate-limited jobs
	(`take_ready` only takes what still fits)."""
	from sync_tweaks.queue import dispatcher

	longest = frappe.db.sql("select max(timeout) from `tabSync Job Type` where rate_limit > 0")[0][0]
	return LIFETIME + 60 + dispatcher.batch_size() * ((longest or 300) + timeouts.OVERRUN_SECONDS)


def serve(sync_queue: str, token: str):
	"""RQ entry point of the waker: sleep in Redis until the next wake-up, run what may start, repeat.
	It serves while it holds the queue's waker lock under `token`."""
	from sync_tweaks.queue import dispatcher, worker

	delivery = worker.current_delivery()
	end = clock.now() + LIFETIME
	rq_end = clock.now() + waker_timeout() - worker.DRAIN_MARGIN_SECONDS
	idle = False
	try:
		while clock.now() < end and _holds(sync_queue, token):
			at = wake_at(sync_queue)
			now = clock.now()
			if at is None:
				break
			if idle:
				at = max(at, now + LEAD + IDLE_WAIT)  # took nothing last time: never spin
			if at - LEAD > now:
				idle = False
				if _wait(sync_queue, min(at - LEAD, end) - now):
					break  # other work arrived in the queue: give the worker to it, a new waker follows
				continue
			_redis().eval(_WAKE_CLEAR, 1, _wake_key(sync_queue), repr(at))
			frappe.db.rollback()
			names = dispatcher.take_ready(sync_queue, delivery, lead=LEAD, seconds=rq_end - clock.now())
			frappe.db.commit()
			if len(names) >= dispatcher.batch_size():
				# more may start now than this process runs in time: let the other workers help
				_redis().set(_behind_key(sync_queue), 1, ex=HELP_SECONDS)
			idle = not names
			if names:
				_run(names, delivery)
			else:
				dispatcher.run_dispatch()  # re-reads the clocks: arms the next wake-up, if any
	finally:
		if wake_at(sync_queue) is not None:
			# still held back: a fresh waker follows, holding the lock throughout, so dispatchers
			# keep leaving the rate-limited jobs to it instead of pushing cold RQ jobs
			start_waker(sync_queue, handover=token)
		elif _redis().eval(_RELEASE, 1, _lock_key(sync_queue), token) and wake_at(sync_queue) is not None:
			start_waker(sync_queue)  # armed while the lock went away


def _run(names: list[str], delivery: str):
	"""Run the jobs the waker took, in this process, without draining (the waker must be back in
	time for the next token); their claims may wait out the last LEAD seconds of a token."""
	from sync_tweaks.queue import after_commit, liveness, transactions, worker

	user = frappe.session.user
	frappe.flags[TOKEN_WAIT] = LEAD
	try:
		transactions.rollback()
		with liveness.lease(delivery), after_commit.held():
			worker.run_jobs(names, delivery)
	finally:
		frappe.flags.pop(TOKEN_WAIT, None)
		if frappe.session.user != user:
			frappe.set_user(user)


def waker_behind(queue: str) -> bool:
	"""Whether the waker of `queue` found more jobs ready than one batch: then dispatchers help."""
	return _redis().get(_behind_key(queue)) is not None  # (Frappe's `exists` prefixes the key again)


def _behind_key(queue: str) -> str:
	return _redis().make_key(f"sync_tweaks:waker_behind:{queue}")


def _holds(queue: str, token: str) -> bool:
	value = _redis().get(_lock_key(queue))
	return (value.decode() if isinstance(value, bytes) else value) == token


def wake_at(queue: str) -> float | None:
	value = _redis().get(_wake_key(queue))
	return float(value) if value is not None else None


def _wait(queue: str, seconds: float) -> bool:
	"""Block in Redis until `seconds` pass or an earlier wake-up is armed (False), or until another RQ
	job arrives in `queue` (True: it goes back to the head of the queue and the waker gives way)."""
	from frappe.utils.background_jobs import get_queue, get_redis_conn

	connection = get_redis_conn()
	queue_key = get_queue(queue).key
	got = connection.blpop([_signal_key(queue), queue_key], timeout=max(seconds, 0.01))
	if got and _text(got[0]) == queue_key:
		connection.lpush(queue_key, got[1])
		return True
	return False


def _text(value) -> str:
	return value.decode() if isinstance(value, bytes) else value


def _key(name: str) -> str:
	return _redis().make_key(f"sync_tweaks:rate:{name}")


def _wake_key(queue: str) -> str:
	return _redis().make_key(f"sync_tweaks:wake:{queue}")


def _signal_key(queue: str) -> str:
	return _redis().make_key(f"sync_tweaks:wake_signal:{queue}")


def _lock_key(queue: str) -> str:
	return _redis().make_key(f"sync_tweaks:waker:{queue}")


def _redis():
	return frappe.cache()
