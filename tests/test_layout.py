"""Layout rules a reviewer would otherwise check by hand: one home for status writes."""

import pathlib
import re

APP = pathlib.Path(__file__).resolve().parent.parent / "sync_tweaks"
HOME = APP / "queue" / "states.py"
# a write of Sync Job's status: raw SQL, or db_set/set_value naming the field
STATUS_WRITES = (
	re.compile(r"set\s+status\s*=", re.I),
	re.compile(r"(db_set|set_value)\([^)]*[\"']status[\"']", re.S),
)


def test_only_the_state_module_writes_a_jobs_status():
	offenders = []
	for path in APP.rglob("*.py"):
		if path == HOME:
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
