"""The Sync Job status machine: one enum, one transition table, a few named questions."""

from enum import Enum


class SyncJobStatus(str, Enum):
	PENDING = "Pending"
	WAITING = "Waiting"
	QUEUED = "Queued"
	STARTED = "Started"
	FINISHED = "Finished"
	FAILED = "Failed"
	SKIPPED = "Skipped"
	RELAYED = "Relayed"
	NO_TARGET = "No Target"
	CANCELED = "Canceled"
	CONFLICT = "Conflict"

	def __str__(self) -> str:
		return self.value


S = SyncJobStatus

TRANSITIONS: dict[SyncJobStatus, frozenset[SyncJobStatus]] = {
	S.PENDING: frozenset({S.WAITING, S.CANCELED}),
	S.WAITING: frozenset({S.QUEUED, S.CANCELED}),
	# Queued -> Waiting: a batch hands back the jobs it did not reach
	S.QUEUED: frozenset({S.STARTED, S.WAITING, S.CANCELED}),
	# Started -> Waiting: the controller deferred the job (SyncJobRetryAfter)
	S.STARTED: frozenset({S.FINISHED, S.FAILED, S.SKIPPED, S.RELAYED, S.NO_TARGET, S.CONFLICT, S.WAITING}),
	S.FAILED: frozenset({S.WAITING, S.CANCELED}),
	# Stop for Review: a person decides per field, then the job runs again with the decisions
	S.CONFLICT: frozenset({S.WAITING, S.CANCELED}),
}

FINAL = frozenset({S.FINISHED, S.SKIPPED, S.RELAYED, S.NO_TARGET, S.CANCELED})
# statuses that hold the concurrency slot of their key
ACTIVE = frozenset({S.QUEUED, S.STARTED})
# statuses a job can be in while work is still ahead of it (Failed may retry, but is not open)
OPEN = frozenset({S.PENDING, S.WAITING, S.QUEUED, S.STARTED})
# nothing happens to the job until a person or a scheduled retry acts: Desk stops following it
SETTLED = FINAL | {S.FAILED, S.CONFLICT}
# final statuses after which the `finished` hook runs
FINISHED_HOOK = frozenset({S.FINISHED, S.SKIPPED, S.RELAYED})

COLORS = {
	S.PENDING: "gray",
	S.WAITING: "yellow",
	S.QUEUED: "orange",
	S.STARTED: "blue",
	S.FINISHED: "green",
	S.FAILED: "red",
	S.SKIPPED: "light-blue",
	S.RELAYED: "purple",
	S.NO_TARGET: "cyan",
	S.CANCELED: "darkgrey",
	S.CONFLICT: "pink",
}

# what a user may do from each status, as offered by the form
ACTIONS = {
	"start": frozenset({S.PENDING}),
	"cancel_sync": frozenset({S.PENDING, S.WAITING, S.QUEUED, S.FAILED, S.CONFLICT}),
	"retry": frozenset({S.FAILED}),
	"resolve": frozenset({S.CONFLICT}),
	"dry_run_again": frozenset(SyncJobStatus) - ACTIVE,
}


def can_transition(current: str, to: str) -> bool:
	"""Whether the table allows `current` -> `to`."""
	return SyncJobStatus(to) in TRANSITIONS.get(SyncJobStatus(current), frozenset())


def is_final(status: str) -> bool:
	return SyncJobStatus(status) in FINAL


def is_done(status: str, due_at: float | None = 0) -> bool:
	"""Whether nothing more will happen to the job by itself: final, or Failed with no retry pending
	(what a relayed parent waits for)."""
	status = SyncJobStatus(status)
	return status in FINAL or (status == S.FAILED and not due_at)


def has_settled(status: str) -> bool:
	return SyncJobStatus(status) in SETTLED


def allowed_actions(status: str) -> list[str]:
	"""The user actions the form offers for a job in `status`."""
	status = SyncJobStatus(status)
	return [action for action, sources in ACTIONS.items() if status in sources]
