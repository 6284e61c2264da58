"""Backfills: run a Sync Job Type over many existing source documents, and see what it did.

What is it?
	A Sync Backfill selects a type's source documents by filters and creates one job per document.
	A dry-run backfill writes no target: its roll-up says what a real run would do to the whole table
	(counts per outcome, per target field how many documents change, sample diffs, failures grouped
	by cause), and it can then be applied: real jobs for the same documents, optionally only those
	that would change.

How does it work?
	- `creation` creates the jobs a chunk at a time: keyset pagination over the source's names, each
	  chunk one transaction that inserts its jobs and moves the backfill's cursor (`last_source`)
	  under the backfill's row lock. Jobs are dispatched as each chunk commits, so they run while
	  later chunks are still being created. A creator works for a few seconds, then hands the rest to
	  a new RQ job of its chain; maintenance resumes a backfill whose creator stopped (its heartbeat
	  is old) with a new chain, and only the newest chain (`creator_token`) may create a chunk.
	- Cancel cancels the first chunk of open jobs in its own transaction, the rest in an RQ job put
	  at the front of the queue, and maintenance sweeps what either missed; a job of a canceled
	  backfill that a worker claims meanwhile is canceled by its claim, and one that fails gets no
	  retry.
	- `rollup` folds ended jobs into the roll-up, after their commit (at most once a second per
	  backfill inside a worker, and once more when the worker's RQ job ends) and every minute.
	- `states` is the only place that changes a backfill's status.

Invariants
	1. A document gets at most one job per backfill: the cursor and the chunk's jobs commit together,
	   every creator reads the cursor under the row lock (two creators never repeat a chunk), and the
	   selection is distinct (a child-table filter matching twice is one document).
	2. A job is folded into the roll-up once: final jobs are marked with their outcome in the fold's
	   transaction; Failed and Conflict jobs, which may still move on, are counted live.
	3. No job of a Canceled backfill starts after the cancel commits (the claim checks).
	4. The backfill's jobs are ordinary Sync Jobs: every promise of the queue holds for them.
"""
