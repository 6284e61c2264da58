"""The queue machinery: how a Sync Job gets from the database to a worker and back.

What is it?
	Sync Jobs live in the database; RQ (Redis) only ever holds jobs that can run now. This package
	moves them between the two, runs them in `bench worker` processes and recovers lost work.

How does it work?
	- `states` is the only place that changes a job's status. Each entry (`mark_waiting`,
	  `mark_queued`, `mark_started`, `mark_done`, `mark_conflict`, `resolve`, `mark_failed`,
	  `requeue`, `cancel`, `defer`) sets its side fields, frees the concurrency slot when the job
	  stops holding it, asks for a dispatch after commit and publishes the change to Desk.
	- `dispatcher` takes Waiting jobs whose concurrency key is free, marks them Queued under the key's
	  Redis `slots` lock and pushes them to RQ after the transaction commits (`after_commit` does all
	  post-commit work in one callback that never raises into the caller).
	- `worker` is the RQ entry point: for each job of its batch it claims the job (only the delivery
	  recorded on the job may), runs it as the job's user under a hard time limit (`timeouts`), applies
	  the controller (`sync_tweaks.apply`) and records the outcome. A `liveness` lease in Redis, renewed
	  by a thread, says the batch's process is alive.
	  Under a backlog the RQ job then drains: it takes the next ready jobs of its queue itself
	  (`dispatcher.take_for_drain`), a group at a time, until none is ready or its time is up. Each
	  job is claimed in a transaction of its own, after the job before it committed and its after-commit
	  work ran (its gates read fresh rows); a batch runs the fill pass once per group.
	- `maintenance` runs every minute: it fails Started jobs whose process is gone or past their
	  deadline, re-queues Queued jobs whose RQ job vanished, moves due retries back to Waiting and
	  repairs lines. `retry` decides whether and when a failure retries.
	- `clock` gives epoch seconds for every deadline, so DST and time-zone changes move nothing.

Invariants
	1. At most one job per concurrency key is Queued or Started (the slot serialises the take; the
	   database, read under row locks, is the truth).
	2. A key's line: jobs of a key run in creation order. A Failed job with a retry pending holds its
	   key's line (newer jobs wait behind it); one without retries left frees it. A Conflict job
	   (Stop for Review) does not hold it: it may wait for a person for days, and a newer job of the
	   pair reads the same target edit and stops on it too, so nothing is overwritten meanwhile;
	   `resolve` puts it back in its key's line (in creation order).
	3. The line rule: every key that is free and has Waiting jobs has a marked head (`next_in_key`) or
	   a key dispatch requested after commit; the minute's maintenance re-marks any line left headless.
	4. A Started job always has a live lease, or maintenance fails it within lease expiry + 60 s;
	   and no job is Started past `deadline_at` (timeout + grace): its process ends it first.
	5. Only the RQ job recorded in `job_id` may run a Queued job: a stale or duplicate delivery is a no-op.
	   A drain records its own RQ job on the jobs it takes, and takes only jobs whose timeouts fit in
	   what is left of that RQ job's limit.
	6. Commits happen only at boundaries: claim (Started), outcome (with the target's writes), the
	   dispatcher's own transaction, and each maintenance step. Controllers never commit.
"""
