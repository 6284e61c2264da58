"""Time for deadlines: epoch seconds, which no DST or time-zone change moves.

Datetime fields (`started_at`, `retry_after`) are kept in the site's time zone for people to read;
every comparison uses the epoch fields (`deadline_at`, `due_at`) written next to them.
"""

import time
from datetime import datetime, timedelta

from frappe.utils import now_datetime


def now() -> float:
	"""Seconds since the epoch (UTC)."""
	return time.time()


def site_now() -> datetime:
	"""The site's wall-clock time, for display fields."""
	return now_datetime()


def site_time_in(seconds: float) -> datetime:
	"""The site's wall-clock time `seconds` from now, for display next to an epoch deadline."""
	return site_now() + timedelta(seconds=seconds)


def site_time_at(epoch: float) -> datetime:
	"""The site's wall-clock time at epoch `epoch` (recent), for display next to an epoch field."""
	return site_now() - timedelta(seconds=now() - epoch)
