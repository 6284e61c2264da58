"""Date, number and string helpers with the semantics of `frappe.utils.data`."""

import datetime
import re
from urllib.parse import quote

from dateutil import parser
from dateutil.relativedelta import relativedelta

import frappe

DATE_FORMAT = "%Y-%m-%d"
TIME_FORMAT = "%H:%M:%S.%f"
DATETIME_FORMAT = f"{DATE_FORMAT} {TIME_FORMAT}"


def is_invalid_date_string(date_string):
	return not isinstance(date_string, str) or (
		(not date_string) or (date_string or "").startswith(("0001-01-01", "0000-00-00"))
	)


def get_system_timezone():
	"""Return the site time zone from System Settings (Frappe's fallback is Asia/Kolkata)."""
	return frappe.get_system_settings("time_zone") or "Asia/Kolkata"


def convert_utc_to_timezone(utc_timestamp, time_zone):
	from pytz import UnknownTimeZoneError, timezone

	utcnow = timezone("UTC").localize(utc_timestamp)
	try:
		return utcnow.astimezone(timezone(time_zone))
	except UnknownTimeZoneError:
		return utcnow


def convert_utc_to_system_timezone(utc_timestamp):
	return convert_utc_to_timezone(utc_timestamp, get_system_timezone())


def now_datetime():
	"""Return the current naive datetime in the site's time zone."""
	utcnow = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
	return convert_utc_to_system_timezone(utcnow).replace(tzinfo=None)


def now():
	"""Return the current site datetime as `yyyy-mm-dd hh:mm:ss.ffffff`."""
	if frappe.flags.current_date:
		return (
			getdate(frappe.flags.current_date).strftime(DATE_FORMAT)
			+ " "
			+ now_datetime().strftime(TIME_FORMAT)
		)
	return now_datetime().strftime(DATETIME_FORMAT)


def nowdate():
	return now_datetime().strftime(DATE_FORMAT)


def get_datetime(datetime_str=None):
	if datetime_str is None:
		return now_datetime()
	if isinstance(datetime_str, datetime.datetime | datetime.timedelta):
		return datetime_str
	if isinstance(datetime_str, datetime.date):
		return datetime.datetime.combine(datetime_str, datetime.time())
	if is_invalid_date_string(datetime_str):
		return None
	try:
		return datetime.datetime.strptime(datetime_str, DATETIME_FORMAT)
	except ValueError:
		return parser.parse(datetime_str)


def getdate(string_date=None, parse_day_first=False):
	if not string_date:
		return get_datetime().date()
	if isinstance(string_date, datetime.datetime):
		return string_date.date()
	if isinstance(string_date, datetime.date):
		return string_date
	if is_invalid_date_string(string_date):
		return None
	try:
		return parser.parse(string_date, dayfirst=parse_day_first).date()
	except parser.ParserError:
		frappe.throw(frappe._("{} is not a valid date string.").format(frappe.bold(string_date)))


def get_datetime_str(datetime_obj):
	if isinstance(datetime_obj, str):
		datetime_obj = get_datetime(datetime_obj)
	return datetime_obj.strftime(DATETIME_FORMAT)


def add_to_date(
	date,
	years=0,
	months=0,
	weeks=0,
	days=0,
	hours=0,
	minutes=0,
	seconds=0,
	as_string=False,
	as_datetime=False,
):
	"""Add or subtract a period; returns the input's type like Frappe."""
	if date is None:
		date = now_datetime()
	if hours:
		as_datetime = True
	if isinstance(date, str):
		as_string = True
		if " " in date:
			as_datetime = True
		try:
			date = parser.parse(date)
		except ParserError:
			frappe.throw(frappe._("Please select a valid date filter"), title=frappe._("Invalid Date"))
	date = date + relativedelta(
		years=years, months=months, weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
	)
	if as_string:
		return date.strftime(DATETIME_FORMAT if as_datetime else DATE_FORMAT)
	return date


ParserError = parser.ParserError


def add_days(date, days):
	return add_to_date(date, days=days)


def cint(s, default=0):
	"""Convert to int like Frappe: floats truncate, junk becomes `default`."""
	try:
		return int(float(s))
	except Exception:
		return default


def flt(s, precision=None, rounding_method=None):
	if isinstance(s, str):
		s = s.replace(",", "")
	try:
		num = float(s)
		if precision is not None:
			num = round(num, precision)
	except Exception:
		num = 0.0
	return num


def cstr(s, encoding="utf-8"):
	if s is None:
		return ""
	if isinstance(s, bytes):
		return s.decode(encoding)
	return str(s)


def strip_html(text):
	return re.sub(r"<[^>]*>", "", cstr(text))


strip_html_tags = strip_html


def escape_html(text):
	if not isinstance(text, str):
		return text
	return (
		text.replace("&", "&amp;")
		.replace("<", "&lt;")
		.replace(">", "&gt;")
		.replace('"', "&quot;")
		.replace("'", "&#39;")
	)


def get_url(uri=None, full_address=False):
	"""Site URL from `host_name` in site config, else http://{site}."""
	host = frappe.local.conf.host_name or frappe.local.conf.hostname or f"http://{frappe.local.site}"
	if not host.startswith("http"):
		host = "http://" + host
	if not uri:
		return host
	return host.rstrip("/") + "/" + uri.lstrip("/")


def slug(name):
	return name.lower().replace(" ", "-")


def get_url_to_form(doctype, name):
	return get_url(uri=f"/app/{quote(slug(doctype))}/{quote(cstr(name))}")
