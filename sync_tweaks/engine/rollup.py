"""A backfill's roll-up: what each of its jobs did (or, in a dry run, would do), summed.

Pure logic: `outcome_of` names the outcome of one ended job from its stored fields, `RollUp` adds
ended jobs up (counts per outcome, per target field the number of documents it changes, a few
sample diffs). Jobs in a final status are folded once; Failed and Conflict jobs may still move on
(a retry, a person's decision), so the roll-up counts them live instead (see sync_tweaks.backfill).
"""

import dataclasses
import json

from sync_tweaks.engine.status import FINAL, OPEN, S

INSERT, UPDATE, DELETE = "Insert", "Update", "Delete"
UNCHANGED, NO_TARGET, CONFLICT, FAILED = "Unchanged", "No Target", "Conflict", "Failed"
SKIPPED, RELAYED, CANCELED, OPEN_OUTCOME = "Skipped", "Relayed", "Canceled", "Open"
# every outcome, in the order the form lists them
OUTCOMES = (INSERT, UPDATE, DELETE, UNCHANGED, NO_TARGET, CONFLICT, FAILED, SKIPPED, RELAYED, CANCELED)
# outcomes that write (or would write) the target: an apply with "only changes" takes these
CHANGING = (INSERT, UPDATE, DELETE, CONFLICT)
SAMPLE_LIMIT = 20
FOLDED_STATUSES = tuple(sorted(s.value for s in FINAL))
LIVE_STATUSES = {S.FAILED.value: FAILED, S.CONFLICT.value: CONFLICT}
OPEN_STATUSES = tuple(sorted(s.value for s in OPEN))


def outcome_of(status: str, operation: str, dry_run: bool, conflict_count: int, diff) -> str:
	"""The outcome of an ended job, from its status, operation, flags and diff."""
	if status in LIVE_STATUSES:
		return LIVE_STATUSES[status]
	if status == S.NO_TARGET.value:
		return NO_TARGET
	if status == S.RELAYED.value:
		return RELAYED
	if status == S.CANCELED.value:
		return CANCELED
	diff = parse(diff)
	if status == S.SKIPPED.value:
		if diff is None:
			return SKIPPED  # the operation is disabled for the job: nothing was compared
		if not has_changes(diff):
			return UNCHANGED
		if not dry_run:
			return SKIPPED
	if dry_run and conflict_count:
		return CONFLICT  # the real run would meet target edits (and follow the type's on_conflict)
	if operation in (INSERT, UPDATE, DELETE):
		return operation
	return SKIPPED if status == S.SKIPPED.value else UPDATE


def changed_fields(diff) -> list[str]:
	"""The target fields (and child tables) a diff changes, each once; entries of another shape
	(a bypass controller may return any diff) are left out."""
	diff = parse(diff) or {}
	fields = []
	for key in ("changed", "added", "removed", "row_changed"):
		entries = diff.get(key)
		for entry in entries if isinstance(entries, list) else []:
			if isinstance(entry, list | tuple) and entry and isinstance(entry[0], str):
				fields.append(entry[0])
	return list(dict.fromkeys(fields))


def has_changes(diff: dict) -> bool:
	return any(diff.get(key) for key in ("changed", "added", "removed", "row_changed"))


def parse(diff) -> dict | None:
	"""A stored diff as a dict; None when there is none, {} when it is not a Version-format dict."""
	if isinstance(diff, str):
		if not diff:
			return None
		try:
			diff = json.loads(diff)
		except ValueError:
			return {}
	if diff is None:
		return None
	return diff if isinstance(diff, dict) else {}


@dataclasses.dataclass
class RollUp:
	"""The folded part of a roll-up; `load` and `dump` keep it in the backfill's JSON fields."""

	counts: dict[str, int] = dataclasses.field(default_factory=dict)
	field_changes: dict[str, int] = dataclasses.field(default_factory=dict)
	samples: list[dict] = dataclasses.field(default_factory=list)

	@classmethod
	def load(cls, counts, field_changes, samples) -> "RollUp":
		stored = [
			json.loads(value) if isinstance(value, str) and value else value
			for value in (counts, field_changes, samples)
		]
		return cls(stored[0] or {}, stored[1] or {}, stored[2] or [])

	def add(self, job: dict) -> str:
		"""Fold one ended job (name, title, status, operation, dry_run, conflict_count, diff_summary);
		returns its outcome."""
		diff = parse(job.get("diff_summary"))
		outcome = outcome_of(
			job["status"],
			job.get("operation") or "",
			bool(job.get("dry_run")),
			job.get("conflict_count") or 0,
			diff,
		)
		self.counts[outcome] = self.counts.get(outcome, 0) + 1
		if outcome in CHANGING and diff:
			for field in changed_fields(diff):
				self.field_changes[field] = self.field_changes.get(field, 0) + 1
			if len(self.samples) < SAMPLE_LIMIT:
				self.samples.append(
					{"job": job["name"], "title": job.get("title"), "outcome": outcome, "diff": diff}
				)
		return outcome

	def totals(self, live: dict[str, int]) -> dict[str, int]:
		"""Every outcome's count: the folded ones plus `live` (Failed and Conflict jobs now)."""
		return {outcome: self.counts.get(outcome, 0) + live.get(outcome, 0) for outcome in OUTCOMES}

	def dump(self) -> dict[str, str]:
		ordered = dict(sorted(self.field_changes.items(), key=lambda item: (-item[1], item[0])))
		return {
			"outcome_counts": json.dumps(self.counts, sort_keys=True),
			"field_changes": json.dumps(ordered),
			"sample_diffs": json.dumps(self.samples, default=str),
		}
