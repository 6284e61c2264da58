"""Bypass that records when it starts and ends and sleeps as its context says: for concurrency tests."""

from sync_tweaks_tests.recorder import behave, record


def execute(sync_job, source_doc):
	record(sync_job, "start", seq=sync_job.get_context().get("seq"))
	behave(sync_job)
	record(sync_job, "end", seq=sync_job.get_context().get("seq"))
	return {"target_doc": None, "operation": "Insert"}
