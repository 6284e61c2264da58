"""The one home of a Sync Backfill's status changes."""

from enum import Enum

import frappe
from frappe import _

from sync_tweaks.exceptions import SyncJobTransitionError

PROGRESS_EVENT = "sync_backfill_progress"


class BackfillStatus(str, Enum):
	DRAFT = "Draft"
	CREATING = "Creating"
	RUNNING = "Running"
	COMPLETED = "Completed"
	CANCELED = "Canceled"
	FAILED = "Failed"

	def __str__(self) -> str:
		return self.value


B = BackfillStatus

TRANSITIONS: dict[BackfillStatus, frozenset[BackfillStatus]] = {
	B.DRAFT: frozenset({B.CREATING, B.CANCELED}),
	# Creating -> Completed: nothing matched the filters
	B.CREATING: frozenset({B.RUNNING, B.COMPLETED, B.CANCELED, B.FAILED}),
	# Running -> Completed once every job is done; Completed -> Running when one is retried
	B.RUNNING: frozenset({B.COMPLETED, B.CANCELED}),
	B.COMPLETED: frozenset({B.RUNNING}),
	# Failed: the creator met an error (bad filters, a disabled type); resume continues at the cursor
	B.FAILED: frozenset({B.CREATING, B.CANCELED}),
}
# what a user may do from each status
ACTIONS = {
	"start": frozenset({B.DRAFT}),
	"cancel": frozenset({B.DRAFT, B.CREATING, B.RUNNING, B.FAILED}),
	"resume": frozenset({B.CREATING, B.FAILED}),
	"apply": frozenset({B.COMPLETED}),
}


def move(backfill, to: BackfillStatus, **fields):
	"""Change `backfill`'s status (the caller holds its row lock and commits) and tell its form."""
	if to not in TRANSITIONS.get(B(backfill.status), frozenset()):
		frappe.throw(
			_("Cannot move Sync Backfill {0} from {1} to {2}").format(
				backfill.name, _(backfill.status), _(to.value)
			),
			SyncJobTransitionError,
		)
	backfill.db_set({"status": to.value, **fields})
	publish(backfill.name)


def check_action(backfill, action: str):
	if B(backfill.status) not in ACTIONS[action]:
		allowed = ", ".join(_(s.value) for s in BackfillStatus if s in ACTIONS[action])
		frappe.throw(
			_("Cannot {0} Sync Backfill {1}: it is {2} (only {3})").format(
				_(action), backfill.name, _(backfill.status), allowed
			),
			SyncJobTransitionError,
		)


def job_refusal(job) -> str | None:
	"""Why a claimed job of a backfill may not run: its backfill was canceled or deleted (None: it may)."""
	if not job.get("sync_backfill"):
		return None
	status = frappe.db.get_value("Sync Backfill", job.sync_backfill, "status")
	if status is None:
		return _("Sync Backfill {0} was deleted").format(job.sync_backfill)
	if status != B.CANCELED.value:
		return None
	return _("Sync Backfill {0} was canceled").format(job.sync_backfill)


def publish(name: str):
	"""Tell the backfill's open form (and list views) that its progress or roll-up moved."""
	frappe.publish_realtime(
		PROGRESS_EVENT, {"name": name}, doctype="Sync Backfill", docname=name, after_commit=True
	)
	frappe.publish_realtime(
		"list_update",
		{"doctype": "Sync Backfill", "name": name, "user": frappe.session.user},
		after_commit=True,
	)
