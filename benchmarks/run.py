"""Benchmarks of sync_tweaks against baselines measured in the same run; prints a table, writes JSON.

Stand-in (default; private Redis servers and a temporary site):
	.venv/bin/python benchmarks/run.py [--quick]
Real site (from the bench's sites folder, with the bench's Python):
	cd ~/frappe-bench/sites && ../env/bin/python ../apps/sync_tweaks/benchmarks/run.py --site mysite

Starts and stops its own workers (`--queue default`); on a real site nothing else may consume that
queue during the run. Scenarios: per-job overhead, parallel throughput, enqueue cost, dispatch cost
with a backlog, bulk enqueue, batched execution, the warm limit of the work itself, the cost per
job of conflict detection, and a dry-run backfill until its roll-up is complete.
"""

import argparse
import datetime
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import hosts  # noqa: E402

SIZES = {
	"jobs": 60,
	"reps": 2,
	"warmup": 4,
	"enqueue_calls": 1000,
	"rounds": 2,
	"bulk_sources": 10000,
	"backlogs": [0, 10000, 50000],
	"dispatch_rounds": 25,
	"limit_jobs": 500,
	"drain_jobs": 2000,
	"latency_jobs": 50,
	"huge_jobs": 100000,
	"conflict_jobs": 200,
	"backfill_docs": 2000,
}
QUICK = {
	"jobs": 10,
	"reps": 1,
	"warmup": 1,
	"enqueue_calls": 100,
	"rounds": 1,
	"bulk_sources": 300,
	"backlogs": [0, 300, 1500],
	"dispatch_rounds": 3,
	"limit_jobs": 50,
	"drain_jobs": 100,
	"latency_jobs": 5,
	"huge_jobs": 2000,
	"conflict_jobs": 30,
	"backfill_docs": 200,
}
SCENARIOS = (
	"overhead",
	"parallel",
	"enqueue",
	"dispatch",
	"bulk",
	"batched",
	"limit",
	"drain",
	"latency",
	"huge",
	"conflicts",
	"backfill",
)
# long: only when asked for by name (--only huge)
ON_REQUEST = ("huge",)
TITLES = {
	"overhead": "Per-job overhead",
	"parallel": "Parallel throughput",
	"enqueue": "Enqueue cost in the caller",
	"dispatch": "Dispatch cost with backlog",
	"bulk": "Bulk enqueue",
	"batched": "Batched execution",
	"limit": "Warm limit",
	"drain": "Draining a backlog",
	"latency": "Latency of a lone job",
	"huge": "100,000 waiting jobs",
	"conflicts": "Conflict detection",
	"backfill": "Dry-run backfill",
}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse_args(argv=None):
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument(
		"--site", help="a real site (run from the bench's sites folder); default: the stand-in"
	)
	parser.add_argument("--sites-path", default=".", help="with --site: the sites folder (default: .)")
	parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of about a minute")
	parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
	parser.add_argument(
		"--json", help="where to write the JSON (default: benchmarks/results/<host>-<time>.json)"
	)
	parser.add_argument("--jobs", type=int, help="jobs per throughput measurement (twice as many batched)")
	parser.add_argument(
		"--reps", type=int, help="repetitions of each throughput measurement (the best counts)"
	)
	parser.add_argument("--enqueue-calls", type=int)
	parser.add_argument("--bulk-sources", type=int)
	parser.add_argument("--backlogs", help="comma-separated Waiting backlogs, the first is the baseline")
	parser.add_argument("--dispatch-rounds", type=int)
	parser.add_argument("--warmup", type=int, help="warm-up jobs per worker")
	parser.add_argument("--drain-jobs", type=int, help="waiting jobs in the drain scenario")
	parser.add_argument("--huge-jobs", type=int, help="waiting jobs in the huge scenario (--only huge)")
	parser.add_argument(
		"--conflict-jobs", type=int, help="Update jobs per round of the conflict-cost scenario"
	)
	parser.add_argument("--backfill-docs", type=int, help="source documents of the dry-run backfill")
	return parser.parse_args(argv)


def sizes_from(args) -> dict:
	sizes = dict(QUICK if args.quick else SIZES)
	for key in (
		"jobs",
		"reps",
		"enqueue_calls",
		"bulk_sources",
		"dispatch_rounds",
		"warmup",
		"drain_jobs",
		"huge_jobs",
		"conflict_jobs",
		"backfill_docs",
	):
		if getattr(args, key) is not None:
			sizes[key] = getattr(args, key)
	if args.backlogs:
		sizes["backlogs"] = [int(b) for b in args.backlogs.split(",")]
	return sizes


def main(argv=None) -> int:
	args = parse_args(argv)
	selected = (
		[s.strip() for s in args.only.split(",")]
		if args.only
		else [s for s in SCENARIOS if s not in ON_REQUEST]
	)
	unknown = set(selected) - set(SCENARIOS)
	if unknown:
		sys.exit(f"unknown scenarios: {', '.join(sorted(unknown))}")
	sizes = sizes_from(args)
	hosts.prepare_path(real=bool(args.site))
	import frappe

	from benchmarks import backfill, drain, scenarios

	host = hosts.Host(args.site, args.sites_path)
	signal.signal(signal.SIGTERM, _exit_on_signal)
	report = {
		"host": None,
		"frappe_version": getattr(frappe, "__version__", None),
		"python": sys.version.split()[0],
		"cpus": os.cpu_count(),
		"load_before": os.getloadavg(),
		"started": datetime.datetime.now().isoformat(timespec="seconds"),
		"quick": args.quick,
		"sizes": sizes,
		"scenarios": {},
	}
	began = time.monotonic()
	bench = None
	try:
		host.start()
		report["host"] = host.name
		others = hosts.registered_workers()
		if others:
			sys.exit(f"{others} worker(s) already consume the {hosts.QUEUE!r} queue: stop them first")
		bench = scenarios.Bench(host, sizes, log=_log)
		bench.setup()
		_log(f"sync_tweaks benchmarks on {host.name} ({os.cpu_count()} CPUs, load {_load()})")
		cells = None
		if {"overhead", "parallel", "batched"} & set(selected):
			_log("workers: bare enqueue vs sync jobs")
			cells = scenarios.worker_matrix(bench)
			for name in ("overhead", "parallel", "batched"):
				if name in selected:
					report["scenarios"][name] = getattr(scenarios, name)(bench, cells)
		limit = None
		if {"limit", "drain", "huge"} & set(selected):
			_log("warm limit: the same work in one process")
			report["scenarios"]["limit"] = scenarios.warm_limit(bench, cells)
			limit = report["scenarios"]["limit"]["rows"][0]["baseline"]
		if "drain" in selected:
			_log("draining a backlog")
			report["scenarios"]["drain"] = drain.backlog(bench, limit)
		if "latency" in selected:
			_log("latency of a lone job")
			report["scenarios"]["latency"] = drain.latency(bench)
		if "huge" in selected:
			_log(f"{sizes['huge_jobs']} waiting jobs")
			report["scenarios"]["huge"] = drain.huge(bench, limit)
		for name, function in (
			("conflicts", scenarios.conflict_cost),
			("enqueue", scenarios.enqueue_cost),
			("bulk", scenarios.bulk),
			("dispatch", scenarios.dispatch_backlog),
			("backfill", backfill.backfill),
		):
			if name in selected:
				_log(f"{TITLES[name].lower()}")
				report["scenarios"][name] = function(bench)
	finally:
		if bench:
			bench.teardown()
		host.stop()
	report["seconds"] = round(time.monotonic() - began, 1)
	report["load_after"] = os.getloadavg()
	report["scenarios"] = {
		name: report["scenarios"][name] for name in SCENARIOS if name in report["scenarios"]
	}
	print(render_table(report))
	path = write_json(report, args.json)
	print(f"\nJSON: {path}")
	return 0


def render_table(report: dict) -> str:
	"""A Markdown table: one row per compared pair."""
	lines = [
		f"sync_tweaks benchmarks: {report['host']}, Frappe {report['frappe_version']}, {report['cpus']} CPUs, "
		f"load {report['load_before'][0]:.2f} -> {report['load_after'][0]:.2f}, {report['seconds']} s"
		+ (" (quick)" if report["quick"] else ""),
		"",
		"| scenario | case | measured | baseline | ratio | target | met |",
		"|---|---|---|---|---|---|---|",
	]
	for name, result in report["scenarios"].items():
		for r in result["rows"]:
			met = {True: "yes", False: "NO", None: "-"}[r["met"]]
			if r["note"] and r["met"] is not None:
				met += f" ({r['note']})"
			lines.append(
				f"| {TITLES[name]} | {r['case']} | {_fmt(r['value'])} {r['unit']} | {_fmt(r['baseline'])} {r['unit']} "
				f"| {r['ratio']:.2f}x | {r['target'] or '-'} | {met} |"
			)
	return "\n".join(lines)


def write_json(report: dict, path: str | None) -> str:
	if not path:
		stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
		host = "standin" if report["host"] == "stand-in" else "site"
		path = os.path.join(RESULTS, f"{host}-{stamp}{'-quick' if report['quick'] else ''}.json")
	os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
	with open(path, "w") as f:
		json.dump(report, f, indent=1, default=str)
	return path


def _fmt(value: float) -> str:
	return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _load() -> str:
	return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _log(message: str):
	print(message, flush=True)


def _exit_on_signal(signum, frame):
	raise SystemExit(128 + signum)


if __name__ == "__main__":
	sys.exit(main())
