"""Layout rules a reviewer would otherwise check by hand: one home for status writes (a Sync Job's
in the queue's state module, a Sync Backfill's in the backfill's)."""

import pathlib
import re

APP = pathlib.Path(__file__).resolve().parent.parent / "sync_tweaks"
HOME = APP / "queue" / "states.py"
BACKFILL_HOME = APP / "backfill" / "states.py"
# a write of Sync Job's status: raw SQL, or db_set/set_value naming the field
STATUS_WRITES = (
	re.compile(r"set\s+status\s*=", re.I),
	re.compile(r"(db_set|set_value)\([^)]*[\"']status[\"']", re.S),
)


def test_only_the_state_module_writes_a_jobs_status():
	offenders = []
	for path in APP.rglob("*.py"):
		if path in (HOME, BACKFILL_HOME):
			continue
		text = path.read_text()
		for pattern in STATUS_WRITES:
			for match in pattern.finditer(text):
				line = text.count("\n", 0, match.start()) + 1
				offenders.append(f"{path.relative_to(APP)}:{line}: {match.group(0)[:60]!r}")
	assert offenders == [], "status is written only by sync_tweaks/queue/states.py"


def test_the_state_module_is_where_the_writes_are():
	text = HOME.read_text()
	assert STATUS_WRITES[0].search(text) and "db_set(fields" in text


def test_the_backfill_state_module_writes_only_a_backfills_status():
	text = BACKFILL_HOME.read_text()
	assert 'backfill.db_set({"status"' in text and "Sync Job`" not in text
