__version__ = "0.1.0"


def __getattr__(name):
	# `sync_tweaks.SyncJobFatalError` without importing frappe when bench only reads __version__
	if name in ("SyncJobFatalError", "SyncJobError", "SyncControllerError", "SyncJobRetryAfter"):
		from sync_tweaks import exceptions

		return getattr(exceptions, name)
	raise AttributeError(name)
