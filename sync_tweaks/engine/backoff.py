"""How long a failed job waits before its next automatic retry."""

import random

MAX_DELAY_SECONDS = 24 * 60 * 60
JITTER = 0.2


def retry_delay_seconds(
	retry_delay_minutes: int, retry_count: int, backoff: str = "Fixed", rng=random
) -> float:
	"""Fixed: retry_delay; Exponential: retry_delay x 2^retry_count with +-20% jitter; both capped at 24 h."""
	base = max(retry_delay_minutes or 0, 0) * 60
	if backoff == "Exponential":
		base = base * (2 ** min(max(retry_count, 0), 30))
		base = base * rng.uniform(1 - JITTER, 1 + JITTER)
	return min(base, MAX_DELAY_SECONDS)
