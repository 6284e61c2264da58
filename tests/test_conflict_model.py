"""The conflict engine against a model (no site): random interleavings of people editing the target,
the source changing, syncs under each policy and decisions on stopped syncs.

What must hold after every sync: a target value a person set (one the sync neither wrote nor found
equal to what the source wanted) is never changed without a conflict choosing the source; Keep
Target Edits and Stop for Review never change it at all without a decision; a stopped sync writes
nothing; and syncing again with nothing edited in between reports no conflict (a kept edit is not
asked about twice).
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from sync_tweaks.engine import conflicts as c

FIELDS = ("title", "items:row1:qty")
VALUES = st.integers(0, 3)
POLICIES = st.sampled_from(c.POLICIES)
ACTIONS = st.lists(
	st.one_of(
		st.tuples(st.just("person"), st.sampled_from(FIELDS), VALUES),
		st.tuples(st.just("source"), st.sampled_from(FIELDS), VALUES),
		st.tuples(st.just("sync"), POLICIES, st.none()),
		st.tuples(st.just("decide"), st.sampled_from(c.CHOICES), st.none()),
	),
	max_size=25,
)


class World:
	def __init__(self):
		self.source = dict.fromkeys(FIELDS, 0)
		self.target = dict.fromkeys(FIELDS, 0)
		self.synced, self.kept = dict(self.target), {}
		self.sync_value = dict(self.target)  # what the sync last wrote to (or confirmed on) each field
		self.stopped = None  # the open conflicts of the last stopped sync
		self.stopped_on = None  # the target as that sync found it
		self.decisions = {}

	def sync(self, policy: str, decisions: dict | None = None):
		before, wants = dict(self.target), dict(self.source)
		plan = c.detect(before, wants, self.synced, self.kept, policy, decisions)
		chosen = {conflict.path: conflict.choice for conflict in plan.conflicts}
		for conflict in plan.conflicts:  # edited since the last sync, and the sync would change it
			assert conflict.now != self.sync_value[conflict.path] and conflict.wants != conflict.now
		if plan.open:
			assert policy == c.STOP
			self.stopped = [conflict.as_dict() for conflict in plan.conflicts]
			self.stopped_on = dict(before)
			return plan, before  # nothing written
		after = dict(wants)
		for path, (now, _wants) in plan.keep.items():
			after[path] = now
		for field in FIELDS:
			set_by_person = before[field] != self.sync_value[field]
			if after[field] != before[field] and set_by_person:
				assert chosen.get(field) == c.SOURCE, (field, before, after, plan)
			if set_by_person and policy != c.OVERWRITE and not decisions:
				assert after[field] == before[field], (field, policy, plan)
		for field in FIELDS:
			if after[field] != before[field] or before[field] == wants[field]:
				self.sync_value[field] = after[field]
		self.target = after
		self.synced, self.kept = c.next_state(after, self.synced, plan)
		self.stopped = None
		return plan, after


@settings(max_examples=300, deadline=None)
@given(ACTIONS)
def test_no_edit_is_overwritten_silently_and_a_kept_edit_is_asked_about_once(actions):
	world = World()
	for kind, arg, value in actions:
		if kind == "person":
			world.target[arg] = value
		elif kind == "source":
			world.source[arg] = value
		elif kind == "decide" and world.stopped:  # a person decides every open conflict the same way
			open_conflicts = [conflict for conflict in world.stopped if not conflict["choice"]]
			decisions = c.decide(world.stopped, {conflict["path"]: arg for conflict in open_conflicts})
			edited_since = {path for path in FIELDS if world.target[path] != world.stopped_on[path]}
			seen_wants = {conflict["path"]: conflict["wants"] for conflict in world.stopped}
			moved_since = {path for path in FIELDS if world.source[path] != seen_wants.get(path)}
			plan, _after = world.sync(c.STOP, decisions)
			# a decision applies while the target holds, and the source wants, what the person saw;
			# edited again or moved on, it asks again
			assert {conflict.path for conflict in plan.open} & set(decisions) <= edited_since | moved_since
			for conflict in plan.open:
				if conflict.path in moved_since - edited_since and conflict.path in decisions:
					assert conflict.wants != seen_wants[conflict.path], plan
		elif kind == "sync":
			target_before = dict(world.target)
			plan, _after = world.sync(arg)
			if plan.open:
				assert world.target == target_before
				continue
			again, _ = world.sync(arg)
			assert again.conflicts == [], (arg, plan, again)


def test_a_decision_needs_a_choice_for_every_open_conflict_and_nothing_else():
	open_conflicts = [
		{"path": "qty", "now": 5, "wants": 1, "choice": None},
		{"path": "title", "now": "x", "wants": "y", "choice": "source"},
	]
	assert c.decide(open_conflicts, {"qty": "target"}) == {
		"qty": {"choice": "target", "now": 5, "wants": 1},
		"title": {"choice": "source", "now": "x", "wants": "y"},
	}
	for bad in ({}, {"qty": "target", "title": "target"}, {"qty": "maybe"}, ["qty"]):
		try:
			c.decide(open_conflicts, bad)
		except c.DecisionError:
			continue
		raise AssertionError(f"accepted {bad!r}")


def test_flat_state_names_child_rows_by_identity():
	snapshot = {
		"fields": {"title": "a"},
		"tables": {"items": [{"name": "r1", "idx": 1, "qty": 2}, {"name": None, "idx": 2, "qty": 3}]},
	}
	assert c.flatten(snapshot) == {"title": "a", "items:r1:qty": 2}
	assert c.split_path("items:r:1:qty") == ("items", "r:1", "qty")
	assert c.split_path("title") == (None, None, "title")
