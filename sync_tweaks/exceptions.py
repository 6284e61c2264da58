"""Errors raised by sync_tweaks; all user-facing ones are ValidationErrors with translatable messages."""

import frappe


class SyncJobError(frappe.ValidationError):
	"""Base class of sync_tweaks' validation errors."""


class InvalidSyncJobRequest(SyncJobError):
	"""Bad parameters for a new Sync Job."""


class SyncJobTransitionError(SyncJobError):
	"""A status change the status table does not allow."""


class SyncControllerError(SyncJobError):
	"""The controller is missing, malformed or returned a wrong shape; retrying cannot help."""


class SyncJobFatalError(Exception):
	"""Raise from a controller for a failure that retrying cannot fix: the job fails without retry."""


class SyncJobRetryAfter(Exception):
	"""Raise from a controller when the other side asks to wait (HTTP 429/503 Retry-After): the job
	waits `seconds` and runs again without counting a retry, at most `max_deferrals` times."""

	def __init__(self, seconds: float, reason: str | None = None):
		self.seconds = max(float(seconds or 0), 0.0)
		self.reason = reason or ""
		super().__init__(f"retry after {self.seconds:g} s" + (f": {self.reason}" if self.reason else ""))


class ControllerCommitted(SyncControllerError):
	"""A controller committed the transaction: a code bug, never retried."""


class SyncJobTimeout(BaseException):
	"""A job ran longer than its timeout; a BaseException so that `except Exception` cannot swallow it."""
