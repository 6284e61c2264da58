"""Numbers about Sync Jobs: `bench sync-job stats` and the workspace chart of jobs per status per day."""

import math
from datetime import date, timedelta

import frappe
from frappe import _
from frappe.utils import add_to_date, get_datetime, getdate, now_datetime

from sync_tweaks.engine.status import FINAL, S, SyncJobStatus

# Dashboard Chart timespans, as add_to_date arguments
TIMESPANS = {
	"Last Week": {"days": -7},
	"Last Month": {"months": -1},
	"Last Quarter": {"months": -3},
	"Last Year": {"years": -1},
}
# statuses whose ended_at belongs to the current run (a retried job keeps its old ended_at while Waiting)
ENDED = tuple(s.value for s in (*FINAL, S.FAILED, S.CONFLICT) if s != S.CANCELED)


def collect(window: timedelta = timedelta(hours=1)) -> dict:
	"""Counts per status and per type, plus throughput and time_taken percentiles of the last `window`."""
	since = now_datetime() - window
	by_status = {
		status: int(count)
		for status, count in _sql("select status, count(*) from `tabSync Job` group by status")
	}
	by_type: dict[str, dict[str, int]] = {}
	for job_type, status, count in _sql(
		"select sync_job_type, status, count(*) from `tabSync Job` group by sync_job_type, status"
	):
		by_type.setdefault(job_type, {})[status] = int(count)
	ended = _sql(
		"select status, time_taken from `tabSync Job` where ended_at >= %(since)s and status in %(ended)s",
		{"since": since, "ended": ENDED},
	)
	durations = sorted(float(time_taken) for _status, time_taken in ended if time_taken is not None)
	ended_by_status: dict[str, int] = {}
	for status, _time_taken in ended:
		ended_by_status[status] = ended_by_status.get(status, 0) + 1
	minutes = window.total_seconds() / 60
	return {
		"by_status": _in_status_order(by_status),
		"by_type": {name: _in_status_order(counts) for name, counts in sorted(by_type.items())},
		"window_minutes": minutes,
		"ended": len(ended),
		"ended_by_status": _in_status_order(ended_by_status),
		"per_minute": round(len(ended) / minutes, 2) if minutes else 0.0,
		"p50": percentile(durations, 50),
		"p95": percentile(durations, 95),
	}


def percentile(sorted_values: list[float], p: float) -> float | None:
	"""Nearest-rank percentile of an ascending list; None when empty."""
	if not sorted_values:
		return None
	rank = max(math.ceil(p / 100 * len(sorted_values)), 1)
	return sorted_values[rank - 1]


@frappe.whitelist()
def jobs_per_status_chart(
	chart_name: str | None = None,
	chart=None,
	no_cache=None,
	filters: str | dict | None = None,
	from_date: str | None = None,
	to_date: str | None = None,
	timespan: str | None = None,
	time_interval: str | None = None,
	heatmap_year=None,
	refresh=None,
) -> dict:
	"""Dashboard Chart Source "Sync Jobs per Status": jobs created per period, one dataset per status.

	Datasets follow SyncJobStatus order, which the chart's `custom_options.colors` rely on.
	"""
	frappe.has_permission("Sync Job", "read", throw=True)
	if chart_name and frappe.db.exists("Dashboard Chart", chart_name):
		saved = frappe.get_cached_doc("Dashboard Chart", chart_name)
		timespan = timespan or saved.timespan
		time_interval = time_interval or saved.time_interval
		from_date, to_date = from_date or saved.from_date, to_date or saved.to_date
	filters = frappe.parse_json(filters) if isinstance(filters, str) else (filters or {})
	end = getdate(to_date) if timespan == "Select Date Range" and to_date else getdate(now_datetime())
	if timespan == "Select Date Range" and from_date:
		start = getdate(from_date)
	else:
		start = getdate(add_to_date(end, **TIMESPANS.get(timespan or "Last Month", TIMESPANS["Last Month"])))
	interval = time_interval or "Daily"
	counts = jobs_per_status_per_day(start, end, (filters or {}).get("sync_job_type"))
	periods = _periods(start, end, interval)
	index = {period: i for i, period in enumerate(periods)}
	datasets = {status.value: [0] * len(periods) for status in SyncJobStatus}
	for (day, status), count in counts.items():
		period = _period_start(day, interval)
		if status in datasets and period in index:
			datasets[status][index[period]] += count
	return {
		"labels": [str(period) for period in periods],
		"datasets": [{"name": _(status), "values": values} for status, values in datasets.items()],
	}


def jobs_per_status_per_day(start: date, end: date, sync_job_type: str | None = None) -> dict:
	"""{(day, status): count} of jobs created from `start` to `end` (inclusive)."""
	condition = " and sync_job_type=%(type)s" if sync_job_type else ""
	rows = _sql(
		f"""select date(creation), status, count(*) from `tabSync Job`
		where creation >= %(start)s and creation < %(end)s{condition}
		group by date(creation), status""",
		{"start": get_datetime(start), "end": get_datetime(end + timedelta(days=1)), "type": sync_job_type},
	)
	return {(getdate(day), status): int(count) for day, status, count in rows}


def _periods(start: date, end: date, interval: str) -> list[date]:
	periods, day = [], _period_start(start, interval)
	while day <= end:
		periods.append(day)
		day = _next_period(day, interval)
	return periods


def _period_start(day: date, interval: str) -> date:
	if interval == "Weekly":
		return day - timedelta(days=day.weekday())
	if interval == "Monthly":
		return day.replace(day=1)
	if interval == "Quarterly":
		return day.replace(day=1, month=(day.month - 1) // 3 * 3 + 1)
	if interval == "Yearly":
		return day.replace(day=1, month=1)
	return day


def _next_period(day: date, interval: str) -> date:
	months = {"Monthly": 1, "Quarterly": 3, "Yearly": 12}.get(interval)
	if months:
		return getdate(add_to_date(day, months=months))
	return day + timedelta(days=7 if interval == "Weekly" else 1)


def _in_status_order(counts: dict[str, int]) -> dict[str, int]:
	ordered = {status.value: counts[status.value] for status in SyncJobStatus if counts.get(status.value)}
	ordered.update({status: count for status, count in counts.items() if status not in ordered and count})
	return ordered


def _sql(query: str, values: dict | None = None) -> list:
	return frappe.db.sql(query, values or {})
