"""`frappe.db` on SQLite: Frappe 15's Database API with stand-in managed transactions.

Connections run in SQLite autocommit mode; the first write, `for_update` read or savepoint of a
transaction issues BEGIN IMMEDIATE (a database-wide write lock held until commit/rollback), so
several worker processes can share one WAL-mode file safely.
"""

import datetime
import decimal
import re
import sqlite3

import frappe
from frappe.exceptions import ImplicitCommitError, QueryTimeoutError, TooManyWritesError
from frappe.model import data_fieldtypes
from frappe.utils import CallbackManager, cint, cstr, flt, get_datetime, getdate, now

BUSY_TIMEOUT_SECONDS = 60
FALLBACK_DATETIME = "0001-01-01 00:00:00.000000"
DefaultOrderBy = "KEEP_DEFAULT_ORDERING"

# Declared column types; names chosen for SQLite affinity and typed conversion on read.
COLUMN_TYPES = {
	"Int": "INTEGER",
	"Long Int": "INTEGER",
	"Check": "INTEGER",
	"Float": "DECIMAL",
	"Currency": "DECIMAL",
	"Percent": "DECIMAL",
	"Duration": "DECIMAL",
	"Rating": "DECIMAL",
	"Date": "DATETEXT",
	"Datetime": "DATETIMETEXT",
	"Time": "TIMETEXT",
}
VARCHAR_TYPES = {
	"Data",
	"Link",
	"Dynamic Link",
	"Select",
	"Read Only",
	"Color",
	"Icon",
	"Phone",
	"Autocomplete",
}
VARCHAR_LEN = 140
NOT_NULL_NUMERIC = {"Check", "Int", "Currency", "Float", "Percent"}


def _to_timedelta(b):
	h, m, s = (b.decode().split(":") + ["0", "0"])[:3]
	return datetime.timedelta(hours=int(h), minutes=int(m), seconds=float(s))


sqlite3.register_converter(
	"DATETIMETEXT", lambda b: datetime.datetime.fromisoformat(b.decode()) if b else None
)
sqlite3.register_converter("DATETEXT", lambda b: datetime.date.fromisoformat(b.decode()[:10]) if b else None)
sqlite3.register_converter("TIMETEXT", _to_timedelta)
sqlite3.register_converter("DECIMAL", lambda b: float(b) if b else 0.0)
sqlite3.register_adapter(datetime.datetime, lambda v: v.strftime("%Y-%m-%d %H:%M:%S.%f"))
sqlite3.register_adapter(datetime.date, lambda v: v.isoformat())
sqlite3.register_adapter(datetime.timedelta, str)
sqlite3.register_adapter(decimal.Decimal, float)


def get_table_name(doctype):
	return doctype if doctype.startswith("__") else f"tab{doctype}"


def column_definition(df):
	"""SQL column definition for a DocField, mirroring Frappe's MariaDB schema defaults."""
	ft = df.fieldtype
	if ft in COLUMN_TYPES:
		col = COLUMN_TYPES[ft]
	elif ft in VARCHAR_TYPES:
		col = f"VARCHAR({cint(df.get('length')) or VARCHAR_LEN}) COLLATE NOCASE"
	else:
		col = "TEXT COLLATE NOCASE"
	if ft in NOT_NULL_NUMERIC:
		default = cint(df.default) if ft in ("Check", "Int") else flt(df.default)
		col += f" NOT NULL DEFAULT {default}"
	elif df.default and not cstr(df.default).startswith(":") and ft in VARCHAR_TYPES:
		col += " DEFAULT " + escape(df.default)
	return col


def escape(s, percent=True):
	s = cstr(s).replace("'", "''")
	return f"'{s}'"


def _is_datetime_field(df):
	return df and df.fieldtype == "Datetime"


def normalize_value(df, value):
	"""Store values like MariaDB columns would hold them (dates in canonical text)."""
	if value is None or value == "" or df is None:
		return (
			None
			if (value == "" and df is not None and df.fieldtype in ("Date", "Datetime", "Time"))
			else value
		)
	if df.fieldtype == "Datetime":
		return get_datetime(value).strftime("%Y-%m-%d %H:%M:%S.%f")
	if df.fieldtype == "Date":
		return getdate(value).strftime("%Y-%m-%d")
	if df.fieldtype in ("Int", "Check", "Long Int") and not isinstance(value, int):
		return cint(value)
	if df.fieldtype in ("Float", "Currency", "Percent") and not isinstance(value, float):
		return flt(value)
	if isinstance(value, datetime.datetime):
		return value.strftime("%Y-%m-%d %H:%M:%S.%f")
	return value


OPERATORS = (
	"=",
	"==",
	"!=",
	"<>",
	"<",
	">",
	"<=",
	">=",
	"like",
	"not like",
	"in",
	"not in",
	"is",
	"between",
)
_SIMPLE_IDENTIFIER = re.compile(r"^\w+$")
_FOR_UPDATE = re.compile(r"\s+for\s+update(\s+(nowait|skip\s+locked))?\s*$", re.I)
_LENGTH_SUFFIX = re.compile(r"\(.*\)")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def _meta_or_none(doctype):
	try:
		return frappe.get_meta(doctype)
	except Exception:
		return None


class Filters:
	"""Build a WHERE clause from Frappe filter forms (dict, list of lists, name, list of names)."""

	def __init__(self, doctype, ifnull=False):
		self.doctype = doctype
		self.ifnull = ifnull
		self.params = []

	def where(self, filters, or_filters=None):
		"""` where …` and-ing `filters` and one or-group of `or_filters` (like db_query), or ''."""
		conds = self.conditions(filters)
		if or_filters:
			items = or_filters.items() if isinstance(or_filters, dict) else or_filters
			ors = [
				c
				for item in items
				for c in self.conditions(dict([item]) if isinstance(or_filters, dict) else [item])
			]
			conds.append("(" + " or ".join(ors) + ")")
		return (" where " + " and ".join(conds)) if conds else ""

	def conditions(self, filters):
		conds = []
		if filters is None or filters == {} or filters == []:
			return conds
		if isinstance(filters, str | int):
			filters = {"name": filters}
		if isinstance(filters, dict):
			for key, value in filters.items():
				if isinstance(value, list | tuple) and len(value) == 2 and str(value[0]).lower() in OPERATORS:
					conds.append(self.condition(self.doctype, key, value[0], value[1]))
				elif isinstance(value, list | tuple) and not (
					value and isinstance(value[0], str) and value[0].lower() in OPERATORS
				):
					conds.append(self.condition(self.doctype, key, "in", value))
				else:
					conds.append(self.condition(self.doctype, key, "=", value))
		elif isinstance(filters, list | tuple):
			if all(not isinstance(f, list | tuple | dict) for f in filters):
				conds.append(self.condition(self.doctype, "name", "in", list(filters)))
			for f in filters:
				if isinstance(f, dict):
					conds.extend(self.conditions(f))
				elif isinstance(f, list | tuple):
					if len(f) == 3:
						conds.append(self.condition(self.doctype, f[0], f[1], f[2]))
					elif len(f) >= 4:
						conds.append(self.condition(f[0], f[1], f[2], f[3]))
					elif len(f) == 2:
						conds.append(self.condition(self.doctype, f[0], "=", f[1]))
		return [c for c in conds if c]

	def condition(self, doctype, fieldname, operator, value):
		operator = str(operator).lower().strip()
		if operator == "==":
			operator = "="
		meta = _meta_or_none(doctype)
		df = meta.get_field(fieldname) if meta else None
		if fieldname in ("creation", "modified"):
			df = frappe._dict(fieldname=fieldname, fieldtype="Datetime")
		column = (
			f"`{get_table_name(doctype)}`.`{fieldname}`" if _SIMPLE_IDENTIFIER.match(fieldname) else fieldname
		)
		cond = self._condition(df, fieldname, column, operator, value)
		if doctype != self.doctype:
			main = get_table_name(self.doctype)
			child = get_table_name(doctype)
			return (
				f"exists (select 1 from `{child}` where `{child}`.`parent` = `{main}`.`name` "
				f"and `{child}`.`parenttype` = {escape(self.doctype)} and {cond})"
			)
		return cond

	def _p(self, df, value):
		self.params.append(normalize_value(df, value) if df else value)
		return "?"

	def _fallback(self, df):
		if df and df.fieldtype in ("Check", "Int", "Float", "Currency", "Percent", "Long Int", "Duration"):
			return "0"
		if df and df.fieldtype == "Datetime":
			return f"'{FALLBACK_DATETIME}'"
		if df and df.fieldtype == "Date":
			return "'0001-01-01'"
		return "''"

	def _condition(self, df, fieldname, column, op, value):
		can_be_null = self.ifnull and fieldname not in ("name", "modified", "creation")
		if df and df.fieldtype in ("Check", "Float", "Int", "Currency", "Percent"):
			can_be_null = False
		if op == "is":
			if value == "set":
				return f"({column} is not null and {column} != '')"
			return f"({column} is null or {column} = '')"
		if op in ("in", "not in"):
			values = value.split(",") if isinstance(value, str) else list(value or [])
			values = [v.strip() if isinstance(v, str) else v for v in values]
			if not values:
				return "1=0" if op == "in" else "1=1"
			marks = ", ".join(self._p(df, v) for v in values)
			has_empty = any(v is None or v == "" for v in values)
			if op == "in":
				return (
					f"({column} in ({marks}) or {column} is null)" if has_empty else f"{column} in ({marks})"
				)
			if self.ifnull or not has_empty:
				return f"ifnull({column}, {self._fallback(df)}) not in ({marks})"
			return f"{column} not in ({marks})"
		if op == "between":
			start, end = (list(value) + [None, None])[:2]
			if _is_datetime_field(df):
				start = get_datetime(start or FALLBACK_DATETIME)
				end_dt = get_datetime(end) if end else datetime.datetime.max
				if (
					isinstance(end, datetime.date)
					and not isinstance(end, datetime.datetime)
					or (isinstance(end, str) and len(end.strip()) <= 10)
				):
					end_dt = end_dt.replace(hour=23, minute=59, second=59, microsecond=999999)
				end = end_dt
			return f"{column} between {self._p(df, start)} and {self._p(df, end)}"
		if op in ("like", "not like"):
			mark = self._p(None, "" if value is None else value)
			if can_be_null and not (value and op == "like"):
				return f"ifnull({column}, '') {op} {mark}"
			return f"{column} {op} {mark}"
		if op == "<>":
			op = "!="
		if value is None and not self.ifnull:
			return f"{column} is null" if op == "=" else f"{column} is not null"
		if value is None:
			value = 0 if df and df.fieldtype in NOT_NULL_NUMERIC else ""
		if op in (">", ">=") and df and df.fieldtype in ("Date", "Datetime"):
			can_be_null = False
		if self.ifnull and can_be_null and not (value and op == "="):
			return f"ifnull({column}, {self._fallback(df)}) {op} {self._p(df, value)}"
		if not self.ifnull and op == "!=":
			return f"({column} != {self._p(df, value)} or {column} is null)"
		return f"{column} {op} {self._p(df, value)}"


def qb_order_by(order_by):
	"""`order_by` as frappe.qb reads it: comma-separated fields, descending unless marked asc."""
	out = []
	for declaration in (order_by or "").split(","):
		if parts := declaration.split():
			out.append(f"{parts[0]} {'asc' if parts[1:] and parts[1].lower() == 'asc' else 'desc'}")
	return ", ".join(out)


def build_fields(doctype, fields):
	if fields in ("*", ["*"]):
		return "*"
	if isinstance(fields, str):
		fields = [f.strip() for f in fields.split(",")] if "(" not in fields else [fields]
	out = []
	for f in fields:
		f = f.strip()
		out.append(f"`{get_table_name(doctype)}`.`{f}`" + f" as `{f}`" if _SIMPLE_IDENTIFIER.match(f) else f)
	return ", ".join(out)


class Database:
	"""SQLite implementation of the `frappe.db` API subset."""

	db_type = "sqlite"
	MAX_WRITES_PER_TRANSACTION = 200_000
	InternalError = sqlite3.InternalError
	OperationalError = sqlite3.OperationalError
	ProgrammingError = sqlite3.ProgrammingError
	IntegrityError = sqlite3.IntegrityError
	DataError = sqlite3.DataError
	REGEX_CHARACTER = "regexp"

	def __init__(self, path):
		self.path = path
		self._conn = None
		self._cursor = None
		self.value_cache = {}
		self.transaction_writes = 0
		self.auto_commit_on_many_writes = False
		self.in_write = False
		self.non_transactional = {}
		self.before_commit = CallbackManager()
		self.after_commit = CallbackManager()
		self.before_rollback = CallbackManager()
		self.after_rollback = CallbackManager()
		self.connect()

	def connect(self):
		self._conn = sqlite3.connect(
			self.path,
			timeout=BUSY_TIMEOUT_SECONDS,
			isolation_level=None,
			detect_types=sqlite3.PARSE_DECLTYPES,
			check_same_thread=False,
		)
		self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
		self._conn.execute("PRAGMA synchronous = NORMAL")
		self._cursor = self._conn.cursor()

	def close(self):
		if self._conn:
			self._end_transaction("ROLLBACK")
			self._conn.close()
			self._conn = None
			self._cursor = None

	def _begin_write(self):
		if not self.in_write:
			self._execute("BEGIN IMMEDIATE")
			self.in_write = True

	def _execute(self, query, values=(), *, many=False):
		if not self._conn:
			self.connect()
		try:
			return (self._cursor.executemany if many else self._cursor.execute)(query, values)
		except sqlite3.OperationalError as e:
			if "locked" in str(e) or "busy" in str(e):
				raise QueryTimeoutError(e) from e
			raise

	def begin(self, *, read_only=False):
		pass

	def _count_writes(self, count=1):
		"""Open the write transaction and count its writes against MAX_WRITES_PER_TRANSACTION."""
		self._begin_write()
		self.transaction_writes += count
		if self.transaction_writes > self.MAX_WRITES_PER_TRANSACTION:
			if not self.auto_commit_on_many_writes:
				raise TooManyWritesError("Too many changes to database in single action.")
			self.commit()
			self._begin_write()

	def insert_rows(self, table, columns, rows, verb="insert"):
		"""INSERT (or `insert or ignore`/`insert or replace`) rows of values for `columns` into a table."""
		if rows := list(rows):
			self._count_writes(len(rows))
			names, marks = ", ".join(f"`{c}`" for c in columns), ", ".join("?" * len(columns))
			self._execute(f"{verb} into `{table}` ({names}) values ({marks})", rows, many=True)

	@staticmethod
	def _translate(query, values):
		"""Turn pymysql-style placeholders into qmark ones, expanding sequence values."""
		if values is None:
			return query, ()
		params = []
		is_dict = isinstance(values, dict)
		pos = iter(values if not is_dict else ())

		def repl(m):
			if m.group(0) == "%%":
				return "%"
			value = values[m.group(1)] if m.group(1) else next(pos)
			if isinstance(value, list | tuple | set):
				value = list(value)
				params.extend(value)
				return "(" + ", ".join("?" * len(value)) + ")"
			params.append(value)
			return "?"

		return _PLACEHOLDER.sub(repl, query), params

	def sql(
		self,
		query,
		values=(),
		*,
		as_dict=0,
		as_list=0,
		debug=0,
		ignore_ddl=0,
		auto_commit=0,
		update=None,
		explain=False,
		run=True,
		pluck=False,
		as_iterator=False,
	):
		"""Execute SQL with `%s`/`%(name)s` placeholders; returns rows like pymysql."""
		query = str(query).strip()
		if not run:
			return query
		word = query.split(None, 1)[0].lower() if query else ""
		rest = query[len(word) :].strip().lower()
		if word in ("commit", "rollback") and not rest:
			self._end_transaction(word.upper())
			return ()
		if word == "rollback" or word == "release":
			return self._execute(query) and () if self.in_write else ()
		if word in ("start", "begin"):
			return ()
		if self.transaction_writes and word in ("alter", "drop", "create", "truncate"):
			raise ImplicitCommitError("This statement can cause implicit commit")
		if word == "truncate":
			query = "delete from " + query.split(None, 1)[1].replace("table ", "", 1)
		if auto_commit:
			self.commit()
		if word == "savepoint":
			self._begin_write()
		elif word in ("insert", "update", "delete", "replace"):
			self._count_writes()
		elif word in ("select", "with") and _FOR_UPDATE.search(query):
			query = _FOR_UPDATE.sub("", query)
			self._begin_write()
		if values == ():
			values = None
		elif values is not None and not isinstance(values, tuple | dict | list):
			values = (values,)
		query, params = self._translate(query, values)
		try:
			self._execute(query, params)
		except Exception as e:
			if ignore_ddl and (self.is_missing_column(e) or self.is_table_missing(e)):
				return ()
			raise
		if auto_commit:
			self.commit()
		if not self._cursor.description:
			return ()
		result = self._cursor.fetchall()
		if pluck:
			return [r[0] for r in result]
		if as_dict:
			keys = [c[0] for c in self._cursor.description]
			result = [frappe._dict(zip(keys, row, strict=False)) for row in result]
			if update:
				for r in result:
					r.update(update)
			return result
		if as_list:
			return [list(r) for r in result]
		return tuple(result)

	def sql_list(self, query, values=(), debug=False, **kwargs):
		return self.sql(query, values, **kwargs, pluck=True)

	def sql_ddl(self, query, debug=False):
		self.commit()
		self.sql(query)

	# transactions

	def commit(self):
		"""Commit; runs before_commit/after_commit and drops rollback callbacks like Frappe."""
		self.before_rollback.reset()
		self.after_rollback.reset()
		self.before_commit.run()
		self._end_transaction("COMMIT")
		self.after_commit.run()

	def rollback(self, *, save_point=None):
		"""Rollback (to a savepoint: only data, no callbacks, like Frappe)."""
		if save_point:
			if self.in_write:
				kept = self._non_transactional_rows()
				self._execute(f"ROLLBACK TO SAVEPOINT {save_point}")
				self._restore(kept)
			return
		self.before_commit.reset()
		self.after_commit.reset()
		self.before_rollback.run()
		self._end_transaction("ROLLBACK")
		self.after_rollback.run()

	def _end_transaction(self, verb):
		"""COMMIT or ROLLBACK; rows of MyISAM tables (Error Log) survive a ROLLBACK, as in MariaDB."""
		kept = self._non_transactional_rows() if verb == "ROLLBACK" and self.in_write else []
		if self.in_write:
			# a signal (RQ's alarm) that interrupted a statement may have ended SQLite's transaction
			# already; MariaDB's COMMIT or ROLLBACK outside a transaction is a no-op
			if self._conn is None or self._conn.in_transaction:
				self._execute(verb)
			self.in_write = False
		self.transaction_writes = 0
		self.non_transactional.clear()
		if kept:
			self._restore(kept)
			self._execute("COMMIT")
			self.in_write, self.transaction_writes = False, 0

	def _non_transactional_rows(self):
		"""Current rows of the MyISAM-table names inserted in this transaction (see Document.db_insert)."""
		rows = []
		for table, names in self.non_transactional.items():
			cursor = self._execute(
				f"select * from `{table}` where name in ({', '.join('?' * len(names))})", [*names]
			)
			if found := cursor.fetchall():
				rows.append((table, [c[0] for c in cursor.description], found))
		return rows

	def _restore(self, kept):
		for table, columns, rows in kept:
			self.insert_rows(table, columns, rows, "insert or replace")

	def savepoint(self, save_point):
		self._begin_write()
		self._execute(f"SAVEPOINT {save_point}")

	# error classification

	@staticmethod
	def is_primary_key_violation(e):
		return isinstance(e, sqlite3.IntegrityError) and "UNIQUE" in str(e) and str(e).endswith(".name")

	@staticmethod
	def is_unique_key_violation(e):
		return isinstance(e, sqlite3.IntegrityError) and "UNIQUE" in str(e) and not str(e).endswith(".name")

	@staticmethod
	def is_deadlocked(e):
		return False

	@staticmethod
	def is_timedout(e):
		return isinstance(e, QueryTimeoutError)

	@staticmethod
	def is_table_missing(e):
		return "no such table" in str(e)

	@staticmethod
	def is_missing_column(e):
		return "no such column" in str(e) or "has no column" in str(e)

	def is_missing_table_or_column(self, e):
		return self.is_missing_column(e) or self.is_table_missing(e)

	@staticmethod
	def escape(s, percent=True):
		return escape(s, percent)

	# reads

	def _select(
		self,
		doctype,
		fields,
		filters,
		*,
		or_filters=None,
		order_by=None,
		limit=None,
		offset=None,
		for_update=False,
		distinct=False,
		group_by=None,
		as_dict=False,
		pluck=False,
		ifnull=False,
	):
		"""Run one SELECT on a doctype's table: rows as tuples, _dicts or plucked first values."""
		f = Filters(doctype, ifnull=ifnull)
		where = f.where(filters, or_filters)
		query = f"select {'distinct ' if distinct else ''}{build_fields(doctype, fields)} from `{get_table_name(doctype)}`{where}"
		if group_by:
			query += f" group by {group_by}"
		if order_by:
			query += f" order by {order_by}"
		if cint(limit) or offset:
			query += f" limit {cint(limit) or -1}" + (f" offset {cint(offset)}" if offset else "")
		if for_update:
			self._begin_write()
		self._execute(query, f.params)
		rows = self._cursor.fetchall()
		if pluck:
			return [r[0] for r in rows]
		if as_dict or fields in ("*", ["*"]):
			keys = [c[0] for c in self._cursor.description]
			return [frappe._dict(zip(keys, r, strict=False)) for r in rows]
		return [tuple(r) for r in rows]

	def get(self, doctype, filters=None, as_dict=True, cache=False):
		return self.get_value(doctype, filters, "*", as_dict=as_dict, cache=cache)

	def get_value(
		self,
		doctype,
		filters=None,
		fieldname="name",
		ignore=None,
		as_dict=False,
		debug=False,
		order_by=DefaultOrderBy,
		cache=False,
		for_update=False,
		*,
		run=True,
		pluck=False,
		distinct=False,
		skip_locked=False,
		wait=True,
	):
		"""First matching row: a value, a list of values, or a _dict."""
		result = self.get_values(
			doctype,
			filters,
			fieldname,
			ignore,
			as_dict,
			debug,
			order_by,
			cache=cache,
			for_update=for_update,
			pluck=pluck,
			distinct=distinct,
			limit=1,
		)
		if not result:
			return None
		row = result[0]
		if pluck:
			return row
		if len(row) > 1 or as_dict:
			return row
		return row[0]

	def get_values(
		self,
		doctype,
		filters=None,
		fieldname="name",
		ignore=None,
		as_dict=False,
		debug=False,
		order_by=DefaultOrderBy,
		update=None,
		cache=False,
		for_update=False,
		*,
		run=True,
		pluck=False,
		distinct=False,
		limit=None,
		skip_locked=False,
		wait=True,
	):
		if cache and isinstance(filters, str) and (doctype, filters, fieldname) in self.value_cache:
			return self.value_cache[(doctype, filters, fieldname)]
		if distinct:
			order_by = None
		fields = [fieldname] if isinstance(fieldname, str) and fieldname != "*" else fieldname
		if isinstance(filters, list) and all(not isinstance(f, list | tuple | dict) for f in filters):
			filters = [n for n in filters if n]
			if not filters:
				return {}
		if (filters is not None) and (filters != doctype or doctype == "DocType"):
			try:
				out = self._select(
					doctype,
					fields,
					filters,
					order_by=qb_order_by("modified" if order_by == DefaultOrderBy else order_by),
					limit=limit,
					for_update=for_update,
					distinct=distinct,
					as_dict=as_dict,
					pluck=pluck,
				)
			except Exception as e:
				if ignore and self.is_missing_table_or_column(e):
					out = None
				elif not ignore and self.is_table_missing(e):
					out = self.get_values_from_single(fields, filters, doctype, as_dict, update=update)
				else:
					raise
		else:
			out = self.get_values_from_single(fields, filters, doctype, as_dict, update=update, pluck=pluck)
		if update and out and as_dict:
			for r in out:
				r.update(update)
		if cache and isinstance(filters, str):
			self.value_cache[(doctype, filters, fieldname)] = out
		return out

	def get_values_from_single(
		self,
		fields,
		filters,
		doctype,
		as_dict=False,
		debug=False,
		update=None,
		*,
		run=True,
		pluck=False,
		distinct=False,
	):
		values = self.get_singles_dict(doctype)
		if fields == "*" or isinstance(filters, dict):
			if isinstance(filters, dict):
				for key, value in filters.items():
					if values.get(key) != value:
						return []
			if as_dict:
				return [values] if values else []
			if isinstance(fields, list):
				return [list(map(values.get, fields))]
		r = frappe._dict({k: v for k, v in values.items() if k in fields})
		if not r:
			return []
		if update:
			r.update(update)
		if not as_dict:
			return [[r.get(field) for field in fields]]
		return [r]

	def get_singles_dict(self, doctype, debug=False, *, for_update=False, cast=False):
		if for_update:
			self._begin_write()
		rows = self._execute("select field, value from tabSingles where doctype = ?", (doctype,)).fetchall()
		if not cast:
			return frappe._dict(rows)
		meta = frappe.get_meta(doctype)
		return frappe._dict(
			(f, cast_fieldtype(meta.get_field(f).fieldtype, v) if meta.get_field(f) else v) for f, v in rows
		)

	def get_single_value(self, doctype, fieldname, cache=True):
		row = self._execute(
			"select value from tabSingles where doctype = ? and field = ?", (doctype, fieldname)
		).fetchone()
		df = frappe.get_meta(doctype).get_field(fieldname)
		if not df:
			frappe.throw(f"Field {fieldname} does not exist on {doctype}")
		return cast_fieldtype(df.fieldtype, row[0] if row else None)

	get_singles_value = get_single_value

	def set_single_value(
		self,
		doctype,
		fieldname,
		value=None,
		*,
		modified=None,
		modified_by=None,
		update_modified=True,
		debug=False,
	):
		to_update = self._get_update_dict(
			fieldname, value, modified=modified, modified_by=modified_by, update_modified=update_modified
		)
		self.sql("delete from tabSingles where doctype = %s and field in %s", (doctype, list(to_update)))
		rows = [(doctype, key, int(val) if isinstance(val, bool) else val) for key, val in to_update.items()]
		self.insert_rows("tabSingles", ("doctype", "field", "value"), rows)
		self.value_cache.pop(doctype, None)

	@staticmethod
	def _get_update_dict(fieldname, value, *, modified, modified_by, update_modified):
		update_dict = dict(fieldname) if isinstance(fieldname, dict) else {fieldname: value}
		if update_modified:
			update_dict.update(
				{"modified": modified or now(), "modified_by": modified_by or frappe.session.user}
			)
		return update_dict

	# writes

	def set_value(
		self, dt, dn, field, val=None, modified=None, modified_by=None, update_modified=True, debug=False
	):
		"""UPDATE without ORM triggers; `dn` may be a name or filters."""
		if dn is None or dt == dn:
			if frappe.get_meta(dt).issingle:
				self.set_single_value(
					dt,
					field,
					val,
					modified=modified,
					modified_by=modified_by,
					update_modified=update_modified,
				)
			return
		to_update = self._get_update_dict(
			field, val, modified=modified, modified_by=modified_by, update_modified=update_modified
		)
		meta = frappe.get_meta(dt)
		f = Filters(dt)
		where = f.where(dn)
		sets = ", ".join(f"`{k}` = ?" for k in to_update)
		values = [normalize_value(meta.get_field(k) or std_field(k), v) for k, v in to_update.items()]
		self._count_writes()
		self._execute(f"update `{get_table_name(dt)}` set {sets}{where}", values + f.params)
		self.value_cache.pop(dt, None)
		# like Frappe 15: a name clears that document's cache, filters clear the whole doctype's
		frappe.clear_document_cache(dt, dn if isinstance(dn, str) else None)

	def exists(self, dt, dn=None, cache=False):
		if dt != "DocType" and dt == dn:
			return dn
		if isinstance(dt, dict):
			dt = dt.copy()
			dt, dn = dt.pop("doctype"), dt
		return self.get_value(dt, dn, ignore=True, cache=cache, order_by=None)

	def count(self, dt, filters=None, debug=False, cache=False, distinct=True):
		f = Filters(dt)
		where = f.where(filters)
		return self._execute(f"select count(*) from `{get_table_name(dt)}`{where}", f.params).fetchone()[0]

	def delete(self, doctype, filters=None, debug=False, **kwargs):
		"""DELETE rows matching filters (all rows without filters), no hooks."""
		filters = filters or kwargs.get("conditions")
		f = Filters(doctype)
		where = f.where(filters)
		self._count_writes()
		self._execute(f"delete from `{get_table_name(doctype)}`{where}", f.params)

	def truncate(self, doctype):
		self.sql_ddl(f"truncate `{get_table_name(doctype)}`")

	def bulk_insert(self, doctype, fields, values, ignore_duplicates=False, *, chunk_size=10_000):
		verb = "insert or ignore" if ignore_duplicates else "insert"
		self.insert_rows(get_table_name(doctype), fields, values, verb)

	# defaults

	# schema

	def get_tables(self, cached=True):
		return [r[0] for r in self._execute("select name from sqlite_master where type = 'table'").fetchall()]

	def table_exists(self, doctype, cached=True):
		return get_table_name(doctype) in self.get_tables()

	has_table = table_exists

	def get_db_table_columns(self, table):
		return [r[1] for r in self._execute(f"pragma table_info(`{table}`)").fetchall()]

	def has_index(self, table_name, index_name):
		return bool(
			self._execute(
				"select 1 from sqlite_master where type = 'index' and tbl_name = ? and name = ?",
				(table_name, f"{table_name}.{index_name}"),
			).fetchone()
		)

	@staticmethod
	def get_index_name(fields):
		return re.sub(r"\s*\([^)]+\)\s*", "", "_".join(fields) + "_index")

	def add_index(self, doctype, fields, index_name=None):
		"""Create a (composite) index; commits first like MariaDB DDL."""
		index_name = index_name or self.get_index_name(fields)
		table = get_table_name(doctype)
		if not self.has_index(table, index_name):
			self.commit()
			cols = ", ".join(f"`{_LENGTH_SUFFIX.sub('', f).strip()}`" for f in fields)
			self._execute(f"create index `{table}.{index_name}` on `{table}` ({cols})")

	def add_unique(self, doctype, fields, constraint_name=None):
		constraint_name = constraint_name or "unique_" + "_".join(fields)
		table = get_table_name(doctype)
		if not self.has_index(table, constraint_name):
			self.commit()
			cols = ", ".join(f"`{f}`" for f in fields)
			self._execute(f"create unique index `{table}.{constraint_name}` on `{table}` ({cols})")

	def sync_table(self, meta):
		"""Create the doctype's table or add missing columns and indexes (like bench migrate)."""
		if meta.issingle or meta.is_virtual:
			return
		table = get_table_name(meta.name)
		columns = {
			"name": "VARCHAR(140) COLLATE NOCASE PRIMARY KEY",
			"creation": "DATETIMETEXT",
			"modified": "DATETIMETEXT",
			"modified_by": "VARCHAR(140) COLLATE NOCASE",
			"owner": "VARCHAR(140) COLLATE NOCASE",
			"docstatus": "INTEGER NOT NULL DEFAULT 0",
			"idx": "INTEGER NOT NULL DEFAULT 0",
		}
		if meta.istable:
			for c in ("parent", "parentfield", "parenttype"):
				columns[c] = "VARCHAR(140) COLLATE NOCASE"
		else:
			for c in ("_user_tags", "_comments", "_assign", "_liked_by"):
				columns[c] = "TEXT"
		for df in meta.fields:
			if df.fieldtype in data_fieldtypes:
				columns[df.fieldname] = column_definition(df)
		self.commit()
		existing = self.get_db_table_columns(table)
		if not existing:
			body = ", ".join(f"`{c}` {d}" for c, d in columns.items())
			self._execute(f"create table `{table}` ({body})")
		else:
			for c, d in columns.items():
				if c not in existing:
					self._execute(f"alter table `{table}` add column `{c}` {d}")
		indexes = [("creation",), ("modified",)] + ([("parent",)] if meta.istable else [])
		indexes += [(df.fieldname,) for df in meta.fields if df.search_index and df.fieldname in columns]
		for fields in indexes:
			self.add_index(
				meta.name, list(fields), f"{fields[0]}_index" if fields[0] not in ("parent",) else "parent"
			)
		for df in meta.fields:
			if df.unique and df.fieldname in columns:
				self.add_unique(meta.name, [df.fieldname], df.fieldname)


def std_field(fieldname):
	"""The DocField of a standard column that needs conversion (creation, modified), or None."""
	if fieldname in ("creation", "modified"):
		return frappe._dict(fieldname=fieldname, fieldtype="Datetime")
	return None


def cast_fieldtype(fieldtype, value):
	"""Cast a text value from tabSingles like frappe.utils.data.cast_fieldtype."""
	if value is None:
		return None if fieldtype not in NOT_NULL_NUMERIC else (0 if fieldtype in ("Int", "Check") else 0.0)
	if fieldtype in ("Int", "Check", "Long Int"):
		return cint(value)
	if fieldtype in ("Float", "Currency", "Percent", "Duration"):
		return flt(value)
	if fieldtype == "Date":
		return getdate(value)
	if fieldtype == "Datetime":
		return get_datetime(value)
	return value
