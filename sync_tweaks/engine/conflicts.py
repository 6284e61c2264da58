"""Conflicts between a sync and edits made on its target since the last sync (pure logic).

A *state* is a flat dict `path -> value` of a snapshot (`sync_tweaks.utils.snapshot`): the path of a
document field is its fieldname, that of a child-row field is `table:row_name:field` (rows count by
their own identity, their name). The *last synced state* is the target as the last successful sync
wrote it. Before an Update, a path whose target value differs from its last synced value (someone
edited it) and that the sync would now change is a conflict, with three values: `synced` (what the
last sync wrote), `now` (the target now) and `wants` (what the sync would write).

A child row the sync would remove is a conflict too when a person touched it on the target: edited
since the last sync, or added there (the last sync never wrote it). Its path is `table:row_name:*`
(`ROW`), `now` the row's values on the target, `synced` the row as last synced (None: added on the
target) and `wants` None (removed). Keeping it puts the row back as the target has it.

Each conflict gets a choice: take the source (write `wants`) or keep the target (leave `now`). A
decision remembers both values the person saw (`now` and `wants`) and applies only while both still
hold. A kept edit keeps its last synced value in the recorded state, so it still reads as an edit,
and remembers what the source wanted (`kept`, `{"wants", "decided"}`): while the source still wants
that, later syncs under Keep Target Edits leave the field alone without asking again, and so do
syncs under Stop for Review when a person decided it (`decided`); a field kept by the Keep Target
Edits policy alone is asked about under Stop for Review, and Overwrite writes it. Once the source
wants something new, it is a conflict again.
"""

import dataclasses
from typing import Any

OVERWRITE = "Overwrite"
KEEP_TARGET = "Keep Target Edits"
STOP = "Stop for Review"
POLICIES = (OVERWRITE, KEEP_TARGET, STOP)
SOURCE = "source"
TARGET = "target"
CHOICES = (SOURCE, TARGET)
# the field part of a whole child row's path (a row the sync would remove)
ROW = "*"
# what each policy chooses for a conflict nobody decided (None: a person must decide)
POLICY_CHOICE = {OVERWRITE: SOURCE, KEEP_TARGET: TARGET, STOP: None}


class DecisionError(ValueError):
	"""Bad conflict decisions; `template` and `args` make a translatable message."""

	def __init__(self, template: str, *args):
		self.template = template
		self.args_ = args
		super().__init__(template.format(*args))


@dataclasses.dataclass
class Conflict:
	path: str
	synced: Any
	now: Any
	wants: Any
	choice: str | None = None

	def as_dict(self) -> dict:
		table, row, field = split_path(self.path)
		return {"path": self.path, "table": table, "row": row, "field": field, **self.values()}

	def values(self) -> dict:
		return {"synced": self.synced, "now": self.now, "wants": self.wants, "choice": self.choice}


@dataclasses.dataclass
class Plan:
	"""What to do with the target's edited fields in this run."""

	conflicts: list[Conflict] = dataclasses.field(default_factory=list)
	# path -> (now, wants): fields to leave as the target has them (kept edits, old and new)
	keep: dict[str, tuple] = dataclasses.field(default_factory=dict)
	# the kept paths a person decided (not the policy)
	decided: set[str] = dataclasses.field(default_factory=set)

	@property
	def open(self) -> list[Conflict]:
		"""Conflicts waiting for a person (Stop for Review without a decision)."""
		return [conflict for conflict in self.conflicts if conflict.choice is None]


def flatten(snapshot: dict | None) -> dict[str, Any]:
	"""The flat state of a snapshot; rows without a name (not saved yet) have no identity and are left out."""
	if not snapshot:
		return {}
	state = dict(snapshot.get("fields") or {})
	for table, rows in (snapshot.get("tables") or {}).items():
		for row in rows:
			if row.get("name"):
				for key, value in row.items():
					if key not in ("name", "idx"):
						state[f"{table}:{row['name']}:{key}"] = value
	return state


def split_path(path: str) -> tuple[str | None, str | None, str]:
	"""(table, row name, field) of a path; table and row are None for a document field."""
	if ":" not in path:
		return None, None, path
	table, rest = path.split(":", 1)
	row, field = rest.rsplit(":", 1)
	return table, row, field


def detect(
	before: dict,
	after: dict,
	synced: dict | None,
	kept: dict | None = None,
	policy: str = OVERWRITE,
	decisions: dict | None = None,
) -> Plan:
	"""Compare the target now (`before`) and as the sync would write it (`after`) with the last
	synced state. A decision (`{path: {"choice", "now", "wants"}}`) applies only while the target
	still holds, and the source still wants, the values the person saw; otherwise the policy chooses."""
	plan = Plan()
	if synced is None:
		return plan  # never synced: nothing tells an edit from the sync's own value
	kept, decisions = kept or {}, decisions or {}
	for path, wants in after.items():
		if path not in before or path not in synced:
			continue  # a new row, or a field the last sync did not write
		now = before[path]
		if wants == now:
			continue  # the sync would not change it
		if _still_kept(plan, kept, path, wants, policy):
			plan.keep[path] = (now, wants)  # kept before, and the source still wants the same
			continue
		if now == synced[path]:
			continue  # nobody edited it since the last sync
		_conflict(plan, path, synced[path], now, wants, policy, decisions)
	after_rows, synced_rows = rows(after), rows(synced)
	for (table, row), now in sorted(rows(before).items()):
		if (table, row) in after_rows:
			continue  # the sync keeps the row (its fields were compared above)
		was = synced_rows.get((table, row))
		if was is not None and all(now.get(field) == value for field, value in was.items()):
			continue  # untouched since the last sync: removing it is the sync's to do
		path = row_path(table, row)
		if _still_kept(plan, kept, path, None, policy):
			plan.keep[path] = (now, None)  # kept before, and the source still removes it
			continue
		_conflict(plan, path, was, now, None, policy, decisions)
	return plan


def _conflict(plan: Plan, path: str, synced, now, wants, policy: str, decisions: dict):
	decision = decisions.get(path)
	if (
		decision
		and decision.get("choice") in CHOICES
		and decision.get("now") == now
		and "wants" in decision
		and decision["wants"] == wants
	):
		choice = decision["choice"]
		if choice == TARGET:
			plan.decided.add(path)
	else:
		choice = POLICY_CHOICE[policy]
	plan.conflicts.append(Conflict(path, synced, now, wants, choice))
	if choice == TARGET:
		plan.keep[path] = (now, wants)


def _still_kept(plan: Plan, kept: dict, path: str, wants, policy: str) -> bool:
	"""Whether an edit kept before stays kept without asking: the source still wants what it wanted
	then, under Keep Target Edits, or under Stop for Review when a person decided it."""
	if path not in kept:
		return False
	entry = kept[path]
	if isinstance(entry, dict) and "wants" in entry:
		kept_wants, decided = entry["wants"], bool(entry.get("decided"))
	else:
		kept_wants, decided = entry, False  # recorded before `decided` existed
	if kept_wants != wants or not (policy == KEEP_TARGET or (policy == STOP and decided)):
		return False
	if decided:
		plan.decided.add(path)
	return True


def row_path(table: str, row: str) -> str:
	"""The path of a whole child row."""
	return f"{table}:{row}:{ROW}"


def rows(state: dict) -> dict[tuple[str, str], dict]:
	"""`(table, row name) -> {field: value}` of the child rows of a flat state."""
	found: dict[tuple[str, str], dict] = {}
	for path, value in state.items():
		table, row, field = split_path(path)
		if table is not None and field != ROW:
			found.setdefault((table, row), {})[field] = value
	return found


def next_state(written: dict, synced: dict | None, plan: Plan) -> tuple[dict, dict]:
	"""(synced, kept) to record after a write: the target as written, except that kept edits keep
	their last synced value (a kept row added on the target stays out) and remember what the source
	wanted."""
	state = dict(written)
	kept = {}
	if synced is None:
		return state, kept
	for path, (_now, wants) in plan.keep.items():
		table, row, field = split_path(path)
		if field == ROW:
			prefix = f"{table}:{row}:"
			for key in [key for key in state if key.startswith(prefix)]:
				del state[key]
			state.update({key: value for key, value in synced.items() if key.startswith(prefix)})
			kept[path] = {"wants": None, "decided": path in plan.decided}
		elif path in state and path in synced:
			state[path] = synced[path]
			kept[path] = {"wants": wants, "decided": path in plan.decided}
	return state, kept


def decide(conflicts: list[dict], choices: dict) -> dict:
	"""The decisions to store for a Conflict job: every open conflict needs a choice; each decision
	remembers the target value it was made against and the value the source wanted then."""
	if not isinstance(choices, dict):
		raise DecisionError("Decisions must map each conflicting field to source or target")
	open_conflicts = {c["path"]: c for c in conflicts if not c.get("choice")}
	unknown = sorted(set(choices) - set(open_conflicts))
	if unknown:
		raise DecisionError("No open conflict on {0}", ", ".join(unknown))
	missing = sorted(set(open_conflicts) - set(choices))
	if missing:
		raise DecisionError("Choose source or target for {0}", ", ".join(missing))
	for path, choice in choices.items():
		if choice not in CHOICES:
			raise DecisionError("Choice for {0} must be source or target, not {1}", path, choice)
	decided = {
		c["path"]: {"choice": c["choice"], "now": c["now"], "wants": c.get("wants")}
		for c in conflicts
		if c.get("choice")
	}
	decided.update(
		{
			path: {
				"choice": choices[path],
				"now": open_conflicts[path]["now"],
				"wants": open_conflicts[path].get("wants"),
			}
			for path in choices
		}
	)
	return decided
