"""A per-job time limit that a controller cannot swallow.

SIGALRM raises `SyncJobTimeout` (a BaseException, so `except Exception` does not catch it) when the
job's time is up, and again every second after, until the block ends. A controller that swallows all
of them is stopped by `on_overrun` after `OVERRUN_SECONDS` more: the worker then ends its process,
before recovery could free the job's slot.
"""

import contextlib
import signal
import threading
import time

from sync_tweaks.exceptions import SyncJobTimeout

OVERRUN_SECONDS = 10


class Limit:
	"""How a limited block went: `fired` counts the timeout signals it received."""

	def __init__(self, seconds: int):
		self.seconds = seconds
		self.fired = 0


@contextlib.contextmanager
def time_limit(seconds: int, on_overrun=None):
	"""Limit the block to `seconds`; yields a `Limit`. Keeps RQ's own (batch) alarm armed around it."""
	limit = Limit(seconds)
	if not seconds or threading.current_thread() is not threading.main_thread():
		yield limit
		return

	def expire(signum, frame):
		limit.fired += 1
		if limit.fired > OVERRUN_SECONDS and on_overrun:
			on_overrun(limit)
		raise SyncJobTimeout(seconds)

	# RQ arms its limit with alarm(): the same timer, read and restored to the microsecond
	rq_remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
	previous = signal.signal(signal.SIGALRM, expire)
	started = time.monotonic()
	signal.setitimer(signal.ITIMER_REAL, seconds, 1)
	try:
		yield limit
	finally:
		# block the timer while it is taken down: a signal arriving now would reach RQ's handler
		signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
		signal.setitimer(signal.ITIMER_REAL, 0)
		if signal.SIGALRM in signal.sigpending():
			signal.sigwait({signal.SIGALRM})
		signal.signal(signal.SIGALRM, previous)
		if rq_remaining:
			signal.setitimer(signal.ITIMER_REAL, max(rq_remaining - (time.monotonic() - started), 0.001))
		signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
	if limit.fired:
		raise SyncJobTimeout(seconds)  # the controller swallowed it: the job still timed out
