"""`bench --site SITE sync-job …`: enqueue, run, retry, cancel and inspect Sync Jobs from the shell.

Exit codes: 0 done; 1 refused (unknown type or job, a status that does not allow the action, doctor
findings); 2 malformed input (invalid JSON, conflicting arguments).
"""

import contextlib
import json
import time

import click
import frappe
from frappe.commands import get_site, pass_context
from frappe.utils import strip_html

from sync_tweaks.engine.status import S
from sync_tweaks.queue import dispatcher, lines, slots, states, worker
from sync_tweaks.sync_tweaks.doctype.sync_job.sync_job import act
from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import get_job_type
from sync_tweaks.utils.sync_job import enqueue_sync_job, enqueue_sync_jobs

# how many job names enqueue and retry print before summarising
LISTED = 20
# sources per transaction in bulk commands
CHUNK = 1000
# how often `backfill` creates a chunk again after a transient database error
TRANSIENT_TRIES = 5


@click.group("sync-job")
def sync_job():
	"""Enqueue, run, retry, cancel and inspect Sync Jobs."""


@sync_job.command("enqueue")
@click.argument("sync_job_type")
@click.argument("sources", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Compute the diff, write nothing (status Skipped).")
@click.option("--context", "context_json", help="JSON object passed to the controller as the job's context.")
@click.option("--all", "all_sources", is_flag=True, help="One job per document of the type's source DocType.")
@pass_context
def enqueue(context, sync_job_type, sources, dry_run, context_json, all_sources):
	"""Queue jobs of SYNC_JOB_TYPE for the SOURCES (names of source documents)."""
	job_context = parse_context(context_json)
	if all_sources and sources:
		raise click.UsageError(_("Give SOURCE names or --all, not both"))
	with connected(context), refused():
		job_type = get_job_type(sync_job_type)
		source_type = job_type.source_document_type
		if all_sources:
			sources = frappe.get_all(source_type, pluck="name", order_by="creation asc")
			if not sources:
				raise click.ClickException(_("There are no {0} documents").format(source_type))
		elif not sources and not job_context:
			raise click.UsageError(_("Give SOURCE names, --all, or --context for a job without a source"))
		else:
			check_sources_exist(source_type, sources)
		common = {"context": job_context, "dry_run": dry_run, "trigger_type": "Manual"}
		if len(sources) > 1:
			names = enqueue_in_chunks(sync_job_type, list(sources), common)
		else:
			source = sources[0] if sources else None
			names = [enqueue_sync_job(sync_job_type, source_document_name=source, **common).name]
			frappe.db.commit()
		click.echo(_("Enqueued {0} Sync Job(s) of {1}").format(len(names), sync_job_type))
		for name in names[:LISTED]:
			click.echo(f"  {name}  {frappe.db.get_value('Sync Job', name, 'status')}")


@sync_job.command("run")
@click.argument("name")
@pass_context
def run(context, name):
	"""Run job NAME now in this process (for debugging) and print its status, error and diff.

	A Pending, Waiting or Failed job is first moved to Queued under its concurrency slot. Exits 1
	when the job ends Failed.
	"""
	with connected(context), refused():
		delivery = take_for_foreground(name)
		status = worker.run_batch([name], delivery)[0]
		job = frappe.get_doc("Sync Job", name)
		if status is None:
			raise click.ClickException(
				_("Sync Job {0} was taken by someone else; it is now {1}").format(name, job.status)
			)
		print_result(job)
	if job.status == "Failed":
		raise SystemExit(1)


@sync_job.command("retry")
@click.argument("name", required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every Failed job.")
@click.option("--type", "sync_job_type", help="With --failed: only jobs of this Sync Job Type.")
@click.option(
	"--signature", help="With --failed: only jobs failing with this error signature (see failures)."
)
@pass_context
def retry(context, name, all_failed, sync_job_type, signature):
	"""Retry the Failed job NAME, or every Failed job with --failed."""
	if bool(name) == all_failed:
		raise click.UsageError(_("Give a Sync Job name or --failed"))
	with connected(context), refused():
		if name:
			names = [name]
			get_job(name)
			act(name, "retry")
		else:
			filters = {"status": "Failed"}
			if sync_job_type:
				get_job_type_or_fail(sync_job_type)
				filters["sync_job_type"] = sync_job_type
			if signature is not None:
				filters["error_signature"] = signature
			names = frappe.get_all("Sync Job", filters=filters, pluck="name", order_by="creation asc")
			for i, job_name in enumerate(names, 1):
				act(job_name, "retry")
				if i % CHUNK == 0:
					frappe.db.commit()  # short transactions: dispatchers skip rows locked here
		frappe.db.commit()
		click.echo(_("Retried {0} Sync Job(s)").format(len(names)))
		for job_name in names[:LISTED]:
			click.echo(f"  {job_name}  {frappe.db.get_value('Sync Job', job_name, 'status')}")


@sync_job.command("cancel")
@click.argument("name")
@click.option("--reason", help="Why, recorded on the job.")
@pass_context
def cancel(context, name, reason):
	"""Cancel job NAME (Pending, Waiting, Queued, Failed or Conflict); a canceled job never runs."""
	with connected(context), refused():
		get_job(name)
		act(name, "cancel_sync", reason)
		frappe.db.commit()
		click.echo(_("Canceled Sync Job {0}").format(name))


@sync_job.command("resolve")
@click.argument("name")
@click.option("--take", type=click.Choice(["source", "target"]), help="The same choice for every conflict.")
@click.option("--decisions", "decisions_json", help='JSON object: {"field": "source" | "target", ...}.')
@pass_context
def resolve(context, name, take, decisions_json):
	"""Run Conflict job NAME again with a choice per conflicting field (its form shows them)."""
	if bool(take) == bool(decisions_json):
		raise click.UsageError(_("Give either --take or --decisions"))
	with connected(context), refused():
		get_job(name)
		act(name, "resolve", decisions=take or decisions_json)
		frappe.db.commit()
		click.echo(_("Sync Job {0} runs again with the decisions").format(name))


@sync_job.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@pass_context
def stats(context, as_json):
	"""Jobs per status and per type; throughput and p50/p95 duration of the last hour."""
	with connected(context):
		from sync_tweaks import stats as job_stats

		numbers = job_stats.collect()
		if as_json:
			click.echo(json.dumps(numbers, indent=1))
			return
		click.echo(_("Sync Jobs per status"))
		for status, count in numbers["by_status"].items() or [(_("none"), 0)]:
			click.echo(f"  {_(status):<12} {count:>8}")
		click.echo(_("Per type"))
		for job_type, counts in numbers["by_type"].items():
			summary = ", ".join(f"{_(status)} {count}" for status, count in counts.items())
			click.echo(f"  {job_type}: {summary}")
		click.echo(
			_("Last hour: {0} ended ({1}/min); time taken p50 {2}, p95 {3}").format(
				numbers["ended"], numbers["per_minute"], seconds(numbers["p50"]), seconds(numbers["p95"])
			)
		)
		if numbers["ended_by_status"]:
			click.echo("  " + ", ".join(f"{_(s)} {n}" for s, n in numbers["ended_by_status"].items()))


@sync_job.command("pause")
@click.argument("sync_job_type")
@click.option("--reason", help="Why, shown on the type's form.")
@pass_context
def pause(context, sync_job_type, reason):
	"""Pause TYPE on every worker at once: its jobs are accepted but none starts."""
	with connected(context), refused():
		from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import pause_type

		get_job_type_or_fail(sync_job_type)
		changed = pause_type(sync_job_type, reason or _("paused from the command line"))
		frappe.db.commit()
		click.echo((_("Paused {0}") if changed else _("{0} was already paused")).format(sync_job_type))


@sync_job.command("resume")
@click.argument("sync_job_type")
@pass_context
def resume(context, sync_job_type):
	"""Resume TYPE: what waits is dispatched at once."""
	with connected(context), refused():
		from sync_tweaks.sync_tweaks.doctype.sync_job_type.sync_job_type import resume_type

		get_job_type_or_fail(sync_job_type)
		waiting = frappe.db.count("Sync Job", {"sync_job_type": sync_job_type, "status": "Waiting"})
		changed = resume_type(sync_job_type)
		frappe.db.commit()  # dispatches what waits
		click.echo(
			(_("Resumed {0} ({1} waiting)") if changed else _("{0} was not paused ({1} waiting)")).format(
				sync_job_type, waiting
			)
		)


@sync_job.command("failures")
@click.option("--type", "sync_job_type", help="Only jobs of this Sync Job Type.")
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@pass_context
def failures(context, sync_job_type, as_json):
	"""Failed jobs grouped by cause (error signature): count, first/last seen, types, retries left."""
	with connected(context), refused():
		from sync_tweaks import failures as failure_groups

		if sync_job_type:
			get_job_type_or_fail(sync_job_type)
		groups = failure_groups.groups(sync_job_type)
		if as_json:
			click.echo(json.dumps(groups, indent=1, default=str))
			return
		if not groups:
			click.echo(_("No failed Sync Jobs"))
			return
		for group in groups:
			retries = (
				_("NO RETRIES LEFT")
				if not group.retrying
				else _("{0} retry pending, {1} no retries left").format(group.retrying, group.no_retries_left)
			)
			click.echo(f"{group.count:>6}  {group.cause}")
			click.echo(
				"        "
				+ _("signature {0} · {1} · first {2} · last {3} · {4}").format(
					group.signature or "-", ", ".join(group.types), group.first_seen, group.last_seen, retries
				)
			)
		click.echo(
			_("Retry a group: bench --site {0} sync-job retry --failed --signature SIGNATURE").format(
				frappe.local.site
			)
		)


@sync_job.command("backfill")
@click.argument("sync_job_type")
@click.option("--filters", "filters_json", help='Source document filters as JSON, e.g. {"status": "Open"}.')
@click.option("--dry-run", is_flag=True, help="Compute what every job would do, write no target.")
@click.option("--limit", type=click.IntRange(min=0), default=0, help="At most this many documents (0: all).")
@click.option("--no-wait", is_flag=True, help="Return once the jobs exist; do not follow them.")
@pass_context
def backfill(context, sync_job_type, filters_json, dry_run, limit, no_wait):
	"""Run SYNC_JOB_TYPE over its existing source documents, then print the roll-up."""
	filters = parse_json_option(filters_json, "--filters", (dict, list))
	with connected(context), refused():
		from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import new_backfill

		get_job_type_or_fail(sync_job_type)
		run_backfill(new_backfill(sync_job_type, filters=filters, dry_run=dry_run, limit=limit), no_wait)


@sync_job.command("backfill-apply")
@click.argument("name")
@click.option("--only-changes", is_flag=True, help="Only the documents the dry run would change.")
@click.option("--no-wait", is_flag=True, help="Return once the jobs exist; do not follow them.")
@pass_context
def backfill_apply(context, name, only_changes, no_wait):
	"""Apply the dry-run Sync Backfill NAME: real jobs for the same documents."""
	with connected(context), refused():
		from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import new_apply

		if not frappe.db.exists("Sync Backfill", name):
			raise click.ClickException(_("Sync Backfill {0} does not exist").format(name))
		applied = new_apply(frappe.get_doc("Sync Backfill", name, for_update=True), only_changes)
		run_backfill(applied, no_wait)


@sync_job.command("backfill-cancel")
@click.argument("name")
@click.option("--reason", help="Why, shown on the backfill's form.")
@pass_context
def backfill_cancel(context, name, reason):
	"""Cancel Sync Backfill NAME: stop creating jobs, cancel its jobs that have not started."""
	with connected(context), refused():
		from sync_tweaks.backfill import creation
		from sync_tweaks.sync_tweaks.doctype.sync_backfill.sync_backfill import act

		if not frappe.db.exists("Sync Backfill", name):
			raise click.ClickException(_("Sync Backfill {0} does not exist").format(name))
		act(name, "cancel", reason=reason or _("canceled from the command line"))
		frappe.db.commit()
		creation.cancel_open_jobs(name)  # what the first chunk left (its RQ job then finds nothing)
		canceled = frappe.db.count("Sync Job", {"sync_backfill": name, "status": "Canceled"})
		click.echo(_("Canceled Sync Backfill {0} and {1} job(s) not started").format(name, canceled))


def run_backfill(backfill, no_wait: bool):
	"""Create the backfill's jobs here, a chunk per transaction, then follow them to the roll-up."""
	from sync_tweaks.backfill import creation, rollup

	token = creation.start(backfill, creator=False)
	frappe.db.commit()
	click.echo(_("Sync Backfill {0}: {1} document(s) match").format(backfill.name, backfill.total_documents))
	with click.progressbar(length=max(backfill.total_documents, 1), label=_("Creating jobs")) as bar:
		shown = 0
		for _attempt in range(TRANSIENT_TRIES):
			while creation.create_chunk(backfill.name, token):
				selected = frappe.db.get_value("Sync Backfill", backfill.name, "documents_selected") or 0
				bar.update(selected - shown)
				shown = selected
			backfill.reload()
			if backfill.status != "Creating" or backfill.creator_token != token:
				break
			time.sleep(1)  # a deadlock or a lost connection: the chunk is created again
	backfill.reload()
	if backfill.status == "Failed":
		raise click.ClickException(backfill.error_message or _("Creating the jobs failed"))
	click.echo(_("Created {0} job(s)").format(backfill.jobs_created))
	if no_wait:
		return
	with click.progressbar(length=max(backfill.jobs_created, 1), label=_("Jobs done")) as bar:
		shown = 0
		while True:
			rollup.fold(backfill.name)
			backfill.reload()
			done = backfill.jobs_created - backfill.jobs_open
			bar.update(done - shown)
			shown = done
			if backfill.status in ("Completed", "Canceled"):
				break
			time.sleep(1)
	print_rollup(backfill)


def print_rollup(backfill) -> None:
	from sync_tweaks.engine.rollup import OUTCOMES
	from sync_tweaks.utils.rollup_html import outcome_label

	click.echo(_("Roll-up of {0} ({1})").format(backfill.name, _(backfill.status)))
	for outcome in OUTCOMES:
		count = backfill.get(frappe.scrub(outcome) + "_count")
		if count:
			click.echo(f"  {outcome_label(outcome, backfill.dry_run):<16} {count:>8}")
	changes = json.loads(backfill.field_changes or "{}")
	if changes:
		click.echo(_("Documents changed per field"))
		for field, count in list(changes.items())[:LISTED]:
			click.echo(f"  {field:<30} {count:>8}")
	for group in json.loads(backfill.failure_groups or "[]"):
		click.echo(f"  {_('Failed')}: {group['count']:>6}  {group.get('title') or group.get('signature')}")


@sync_job.command("doctor")
@click.option("--type", "sync_job_type", help="Check only this Sync Job Type.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_context
def doctor(context, sync_job_type, as_json):
	"""Check workers, scheduler, controllers and stuck jobs; exit 1 when anything is wrong."""
	with connected(context):
		from sync_tweaks import doctor as checks

		if sync_job_type:
			get_job_type_or_fail(sync_job_type)
		findings = checks.run(sync_job_type)
		if as_json:
			click.echo(json.dumps([finding.as_dict() for finding in findings], indent=1))
		else:
			print_findings(findings)
	if findings:
		raise SystemExit(1)


commands = [sync_job]


# helpers


def _(message: str) -> str:
	"""Translate when a site is loaded (arguments are checked before connecting)."""
	return frappe._(message) if getattr(frappe.local, "lang", None) else message


@contextlib.contextmanager
def connected(context):
	"""Connect to the command's site, or reuse the connection already open on it.

	Reusing matters when the commands are invoked inside a process that is already connected (tests,
	`bench execute`, a console): `frappe.destroy()` would tear down that caller's `frappe.local` and
	its database connection. The owner of a reused connection also owns its teardown.
	"""
	site = get_site(context)
	if getattr(frappe.local, "site", None) == site and getattr(frappe.local, "db", None):
		yield site
		return
	frappe.init(site=site)
	frappe.connect()
	try:
		yield site
	finally:
		frappe.destroy()


@contextlib.contextmanager
def refused():
	"""Turn Frappe's validation errors (unknown type, disabled type, bad status …) into exit code 1."""
	try:
		yield
	except (frappe.ValidationError, frappe.DoesNotExistError) as e:
		frappe.db.rollback()
		frappe.clear_messages()
		raise click.ClickException(strip_html(str(e)) or e.__class__.__name__)


def parse_context(context_json: str | None) -> dict | None:
	return parse_json_option(context_json, "--context", (dict,))


def parse_json_option(text: str | None, option: str, types: tuple):
	"""The option's JSON value (None when not given); exit 2 when it is not JSON of `types`."""
	if text is None:
		return None
	try:
		value = json.loads(text)
	except ValueError as e:
		raise click.BadParameter(_("not valid JSON: {0}").format(e), param_hint=option)
	if not isinstance(value, types):
		message = _("must be a JSON object") if types == (dict,) else _("must be a JSON object or list")
		raise click.BadParameter(message, param_hint=option)
	return value


def check_sources_exist(doctype: str, names) -> None:
	"""Refuse names that are neither documents nor Deleted Documents (a deletion may be synced)."""
	names = list(names)
	found = set(frappe.get_all(doctype, filters={"name": ["in", names]}, pluck="name")) if names else set()
	missing = [name for name in names if name not in found]
	if missing:
		found |= set(
			frappe.get_all(
				"Deleted Document",
				filters={"deleted_doctype": doctype, "deleted_name": ["in", missing]},
				pluck="deleted_name",
			)
		)
	missing = [name for name in names if name not in found]
	if missing:
		raise click.ClickException(_("{0} not found: {1}").format(doctype, ", ".join(missing[:LISTED])))


def get_job(name: str):
	if not frappe.db.exists("Sync Job", name):
		raise click.ClickException(_("Sync Job {0} does not exist").format(name))
	return frappe.get_doc("Sync Job", name)


def get_job_type_or_fail(name: str) -> None:
	if not frappe.db.exists("Sync Job Type", name):
		raise click.ClickException(_("Sync Job Type {0} does not exist").format(name))


def enqueue_in_chunks(sync_job_type: str, sources: list[str], common: dict) -> list[str]:
	"""Bulk enqueue, committing every CHUNK sources so no transaction holds thousands of row locks."""
	names = []
	with click.progressbar(length=len(sources), label=_("Enqueueing Sync Jobs")) as bar:
		for start in range(0, len(sources), CHUNK):
			chunk = sources[start : start + CHUNK]
			names.extend(enqueue_sync_jobs(sync_job_type, chunk, **common))
			frappe.db.commit()
			bar.update(len(chunk))
	return names


def take_for_foreground(name: str) -> str:
	"""Queue job `name` for this process through the dispatcher; returns the delivery id.

	A Pending or Failed job is first moved to Waiting as the Start and Retry buttons do (undone
	when the job cannot run now).
	"""
	job = get_job(name)
	if job.status in (S.PENDING.value, S.FAILED.value):
		job = act(name, "start" if job.status == S.PENDING.value else "retry")
	delivery = "foreground-" + frappe.generate_hash(length=12)
	if job.status == S.QUEUED.value:
		# take it over from its RQ job (whose worker then skips it), under a lease of our own
		states.set_delivery([name], delivery)
		frappe.db.commit()
		return delivery
	if job.status != S.WAITING.value:
		raise click.ClickException(
			_("Cannot run Sync Job {0}: it is {1} (only Pending, Waiting, Queued or Failed)").format(
				name, _(job.status)
			)
		)
	if not dispatcher.take_one(name, delivery):
		frappe.db.rollback()
		holder = lines.holder(job.concurrency_key) or slots.holder(job.concurrency_key)
		if holder:
			raise click.ClickException(
				_("Sync Job {0} holds the concurrency slot {1}; run this job when it ends").format(
					holder, job.concurrency_key
				)
			)
		raise click.ClickException(
			_("Sync Job {0} is older and waits before it in line {1}; run that one first").format(
				lines.head(job.concurrency_key).name, job.concurrency_key
			)
		)
	frappe.db.commit()
	return delivery


def print_findings(findings: list) -> None:
	if not findings:
		click.secho(_("No problems found"), fg="green")
	for finding in findings:
		click.secho(f"✗ {finding.problem}", fg="red")
		if finding.jobs:
			click.echo("  " + _("Jobs: {0}").format(", ".join(finding.jobs)))
		click.echo("  " + _("Fix: {0}").format(finding.fix))


def print_result(job) -> None:
	color = {"Finished": "green", "Failed": "red"}.get(job.status, "yellow")
	click.secho(f"{job.name}: {_(job.status)} ({seconds(job.time_taken)})", fg=color, bold=True)
	if job.target_document_name:
		click.echo(
			_("Target: {0} {1} ({2})").format(
				job.target_document_type, job.target_document_name, _(job.operation or "")
			)
		)
	if job.error_message:
		click.echo(_("Error:"))
		click.echo(job.error_message.rstrip())
	diff = frappe.parse_json(job.diff_summary) if job.diff_summary else None
	if diff:
		click.echo(_("Diff:"))
		for line in diff_lines(diff):
			click.echo("  " + line)


def diff_lines(diff: dict) -> list[str]:
	"""A Version-format diff as text: `field: old -> new`, `+ table: row`, `- table: row`."""
	show = lambda value: json.dumps(value, default=str, ensure_ascii=False)  # noqa: E731
	lines = [f"{field}: {show(old)} -> {show(new)}" for field, old, new in diff.get("changed") or []]
	lines += [f"+ {table}: {show(row)}" for table, row in diff.get("added") or []]
	lines += [f"- {table}: {show(row)}" for table, row in diff.get("removed") or []]
	for table, idx, _row_name, changes in diff.get("row_changed") or []:
		lines += [f"{table} #{idx} {field}: {show(old)} -> {show(new)}" for field, old, new in changes]
	return lines or [_("no changes")]


def seconds(value) -> str:
	return "-" if value is None else f"{float(value):.3f} s"
