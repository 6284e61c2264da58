"""`frappe.model.document`: Document with Frappe 15's load/insert/save/db_set semantics and hook order."""

import copy
import functools
import operator
import re
import weakref

import frappe
from frappe import _
from frappe.database import VARCHAR_TYPES, get_table_name, normalize_value, std_field
from frappe.model import child_table_fields, default_fields, float_like_fields, optional_fields, table_fields
from frappe.model.docstatus import DocStatus
from frappe.model.naming import set_new_name, validate_name
from frappe.utils import cint, cstr, flt, now, nowdate, strip_html

_controllers = {}
CORE_CONTROLLERS = {"User": "frappe.core.doctype.user.user.User"}
EMAIL_PATTERN = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def get_controller(doctype):
	"""Controller class: `{app}.{module}.doctype.{dt}.{dt}.{DocType}`, or Document for custom doctypes
	and core doctypes the stand-in has no controller for."""
	override = frappe.get_hooks("override_doctype_class", {}).get(doctype)
	key = (doctype, tuple(override or ()), tuple(frappe.get_installed_apps()))
	if key in _controllers:
		return _controllers[key]
	meta = frappe.get_meta(doctype)
	app = (frappe.local.module_app or {}).get(frappe.scrub(meta.module))
	if override or doctype in CORE_CONTROLLERS:
		cls = frappe.get_attr(override[-1] if override else CORE_CONTROLLERS[doctype])
	elif meta.custom or app in (None, "frappe"):
		cls = Document
	else:
		from frappe.modules import load_doctype_module

		module = load_doctype_module(doctype)
		classname = doctype.replace(" ", "").replace("-", "")
		cls = getattr(module, classname, None)
		if cls is None:
			raise ImportError(f"{doctype}: {classname} does not exist in module {module.__name__}")
	_controllers[key] = cls
	return cls


def get_doc(*args, **kwargs):
	"""Document from (doctype, name), (doctype) for singles, a dict, or kwargs."""
	if args:
		if isinstance(args[0], BaseDocument):
			return args[0]
		elif isinstance(args[0], str):
			doctype = args[0]
		elif isinstance(args[0], dict):
			kwargs = args[0]
		else:
			raise ValueError("First non keyword argument must be a string or dict")
	if len(args) < 2 and kwargs:
		if "doctype" in kwargs:
			doctype = kwargs["doctype"]
		else:
			raise ValueError('"doctype" is a required key')
	return get_controller(doctype)(*args, **kwargs)


def new_doc(doctype, *, parent_doc=None, parentfield=None, as_dict=False):
	"""New document with static and dynamic defaults from the DocType; the static part is a template
	kept for the context, as Frappe's `get_new_doc` does."""
	templates = frappe.local.new_doc_templates
	if doctype not in templates:
		templates[doctype] = _make_new_doc(doctype)
	values = copy.deepcopy(templates[doctype])
	for df in frappe.get_meta(doctype).fields:
		default = df.get("default")
		if df.fieldtype in table_fields or not default:
			continue
		if default == "__user":
			values[df.fieldname] = frappe.session.user
		elif default == "Today":
			values[df.fieldname] = nowdate()
		elif default.lower() == "now" and df.fieldtype in ("Datetime", "Time"):
			values[df.fieldname] = now()
	if parent_doc:
		values.update(parent=parent_doc.name, parenttype=parent_doc.doctype)
	if parentfield:
		values["parentfield"] = parentfield
	return values if as_dict else get_doc(values)


def _make_new_doc(doctype) -> dict:
	"""Static defaults (like Frappe's make_new_doc: unsanitised, so Int fields without a default stay None)."""
	doc = get_doc({"doctype": doctype, "__islocal": 1, "owner": frappe.session.user, "docstatus": 0})
	meta = frappe.get_meta(doctype)
	for df in meta.fields:
		if df.fieldtype in table_fields:
			continue
		default = df.get("default")
		value = None
		if default:
			dynamic = default in ("__user", "Today") or (
				default.lower() == "now" and df.fieldtype in ("Datetime", "Time")
			)
			if not dynamic and not cstr(default).startswith(":") and df.fieldname != meta.title_field:
				value = default
		elif df.fieldtype == "Select" and df.options and df.options not in ("[Select]", "Loading..."):
			value = df.options.split("\n", 1)[0]
		if value is not None:
			doc.set(df.fieldname, value)
	doc._fix_numeric_types()
	values = doc.get_valid_dict(sanitize=False)
	values.update(doctype=doctype, __islocal=1)
	return values


def filter_rows(data, filters, limit=None):
	"""Rows matching `{field: value or (operator, value)}`, like BaseDocument.get with filters."""
	out = []
	for d in data:
		if all(
			(d.get(k) == v) if not isinstance(v, tuple | list) else _match(d.get(k), v)
			for k, v in filters.items()
		):
			out.append(d)
			if limit and len(out) >= limit:
				break
	return out


_ROW_OPERATORS = {
	"=": operator.eq,
	"!=": operator.ne,
	"in": lambda value, target: value in target,
	"not in": lambda value, target: value not in target,
	">": lambda value, target: value is not None and value > target,
	"<": lambda value, target: value is not None and value < target,
}


def _match(value, cond):
	compare = _ROW_OPERATORS.get(cond[0])
	return bool(compare and compare(value, cond[1]))


class BaseDocument:
	"""Field storage, serialisation and validations shared by parents and child rows."""

	_reserved_keywords = frozenset(
		(
			"doctype",
			"meta",
			"flags",
			"parent_doc",
			"_table_fields",
			"_valid_columns",
			"_doc_before_save",
			"_table_fieldnames",
			"_reserved_keywords",
			"permitted_fieldnames",
			"dont_update_if_missing",
		)
	)

	def __init__(self, d):
		if d.get("doctype"):
			self.doctype = d["doctype"]
		self._table_fieldnames = {df.fieldname for df in self.meta.get_table_fields()}
		self.update(d)
		self.dont_update_if_missing = []
		if hasattr(self, "__setup__"):
			self.__setup__()

	@functools.cached_property
	def meta(self):
		return frappe.get_meta(self.doctype)

	def __getstate__(self):
		state = self.__dict__.copy()
		state.pop("_parent_doc", None)
		state.pop("meta", None)
		return state

	def update(self, d):
		if "name" in d:
			self.name = d["name"]
		ignore_children = hasattr(self, "flags") and self.flags.ignore_children
		for key, value in d.items():
			self.set(key, value, as_value=ignore_children)
		return self

	def update_if_missing(self, d):
		if isinstance(d, BaseDocument):
			d = d.get_valid_dict()
		for key, value in d.items():
			if value is not None and self.get(key) is None and key not in self.dont_update_if_missing:
				self.set(key, value)

	def get(self, key, filters=None, limit=None, default=None):
		if isinstance(key, dict):
			return filter_rows(self.get_all_children(), key, limit=limit)
		if filters:
			if isinstance(filters, dict):
				return filter_rows(self.__dict__.get(key, []), filters, limit=limit)
			default = filters
		value = self.__dict__.get(key, default)
		if limit and isinstance(value, list | tuple) and len(value) > limit:
			value = value[:limit]
		return value

	def set(self, key, value, as_value=False):
		if key in self._reserved_keywords:
			return
		if not as_value and key in self._table_fieldnames:
			self.__dict__[key] = []
			if value:
				self.extend(key, value)
			return
		self.__dict__[key] = value

	def append(self, key, value=None):
		if value is None:
			value = {}
		if (table := self.__dict__.get(key)) is None:
			self.__dict__[key] = table = []
		ret_value = self._init_child(value, key)
		table.append(ret_value)
		ret_value.parent_doc = weakref.ref(self)
		return ret_value

	@property
	def parent_doc(self):
		ref = getattr(self, "_parent_doc", None)
		return ref() if isinstance(ref, weakref.ReferenceType) else ref

	@parent_doc.setter
	def parent_doc(self, value):
		self._parent_doc = value

	def extend(self, key, value):
		for v in value:
			self.append(key, v)

	def remove(self, doc):
		if doc.get("parentfield"):
			self.get(doc.parentfield).remove(doc)

	def _init_child(self, value, key):
		if not isinstance(value, BaseDocument):
			if not (doctype := self.get_table_field_doctype(key)):
				raise AttributeError(key)
			value["doctype"] = doctype
			value = get_controller(doctype)(value)
		value.parent = self.name
		value.parenttype = self.doctype
		value.parentfield = key
		if value.docstatus is None:
			value.docstatus = DocStatus.draft()
		if not getattr(value, "idx", None):
			value.idx = len(getattr(self, key, None) or []) + 1
		if not getattr(value, "name", None):
			value.__dict__["__islocal"] = 1
		return value

	def get_table_field_doctype(self, fieldname):
		return self.meta.get_field(fieldname).options

	def get_valid_columns(self):
		return self.meta.get_valid_columns()

	def init_child_tables(self):
		for fieldname in self._table_fieldnames:
			if self.__dict__.get(fieldname) is None:
				self.__dict__[fieldname] = []

	def init_valid_columns(self):
		for key in default_fields:
			if key not in self.__dict__:
				self.__dict__[key] = None
			if self.__dict__[key] is None:
				if key == "docstatus":
					self.docstatus = DocStatus.draft()
				elif key == "idx":
					self.__dict__[key] = 0
		for key in self.get_valid_columns():
			if key not in self.__dict__:
				self.__dict__[key] = None

	def is_new(self):
		return self.get("__islocal")

	@property
	def docstatus(self):
		return DocStatus(cint(self.get("docstatus")))

	@docstatus.setter
	def docstatus(self, value):
		self.__dict__["docstatus"] = DocStatus(cint(value))

	def get_valid_dict(
		self, sanitize=True, convert_dates_to_str=False, ignore_nulls=False, ignore_virtual=False
	):
		d = frappe._dict()
		for fieldname in self.meta.get_valid_columns():
			value = self.__dict__.get(fieldname)
			if not sanitize and value is None:
				d[fieldname] = None
				continue
			df = self.meta.get_field(fieldname)
			if df:
				if isinstance(value, list) and df.fieldtype not in table_fields:
					frappe.throw(_("Value for {0} cannot be a list").format(_(df.label or df.fieldname)))
				if df.fieldtype == "Check":
					value = 1 if cint(value) else 0
				elif df.fieldtype == "Int" and not isinstance(value, int):
					value = cint(value)
				elif df.fieldtype == "JSON" and isinstance(value, dict):
					value = frappe.as_json(value, indent=None, separators=(",", ":"))
				elif df.fieldtype in float_like_fields and not isinstance(value, float):
					value = flt(value)
				elif (df.fieldtype in ("Datetime", "Date", "Time") and value == "") or (
					df.get("unique") and cstr(value).strip() == ""
				):
					value = None
			if convert_dates_to_str and hasattr(value, "isoformat"):
				value = str(value)
			if ignore_nulls and value is None:
				continue
			d[fieldname] = value
		return d

	def as_dict(
		self, no_nulls=False, no_default_fields=False, convert_dates_to_str=False, no_child_table_fields=False
	):
		doc = self.get_valid_dict(convert_dates_to_str=convert_dates_to_str, ignore_nulls=no_nulls)
		doc["doctype"] = self.doctype
		for fieldname in self._table_fieldnames:
			doc[fieldname] = [
				d.as_dict(
					convert_dates_to_str=convert_dates_to_str,
					no_nulls=no_nulls,
					no_default_fields=no_default_fields,
					no_child_table_fields=no_child_table_fields,
				)
				for d in (self.get(fieldname) or [])
			]
		if no_default_fields:
			for key in default_fields:
				doc.pop(key, None)
		if no_child_table_fields:
			for key in child_table_fields:
				doc.pop(key, None)
		for key in ("_user_tags", "__islocal", "__onload", "_liked_by", "__run_link_triggers", "__unsaved"):
			if value := getattr(self, key, None):
				doc[key] = value
		return doc

	def as_json(self):
		return frappe.as_json(self.as_dict())

	def _db_values(self):
		d = self.get_valid_dict(convert_dates_to_str=False, ignore_virtual=True)
		return {k: normalize_value(self.meta.get_field(k) or std_field(k), v) for k, v in d.items()}

	def db_insert(self, ignore_if_duplicate=False):
		"""INSERT the row (valid columns only); PK clash -> DuplicateEntryError."""
		if not self.name:
			set_new_name(self)
		if not self.creation:
			self.creation = self.modified = now()
			self.owner = self.modified_by = frappe.session.user
		d = self._db_values()
		try:
			frappe.db.insert_rows(get_table_name(self.doctype), list(d), [list(d.values())])
		except Exception as e:
			if frappe.db.is_primary_key_violation(e):
				if self.meta.autoname == "hash":
					self.flags.retry_count = (self.flags.retry_count or 0) + 1
					if self.flags.retry_count > 5:
						raise
					self.name = None
					self.db_insert()
					return
				if not ignore_if_duplicate:
					frappe.msgprint(
						_("{0} {1} already exists").format(_(self.doctype), frappe.bold(self.name)),
						title=_("Duplicate Name"),
						indicator="red",
					)
					raise frappe.DuplicateEntryError(self.doctype, self.name, e)
			elif frappe.db.is_unique_key_violation(e):
				self.show_unique_validation_message(e)
			else:
				raise
		if self.meta.get("engine") == "MyISAM":
			frappe.db.non_transactional.setdefault(get_table_name(self.doctype), set()).add(self.name)
		self.set("__islocal", False)

	def db_update(self):
		if self.get("__islocal") or not self.name:
			self.db_insert()
			return
		d = self._db_values()
		name = cstr(d.pop("name"))
		try:
			frappe.db.sql(
				f"update `{get_table_name(self.doctype)}` set {', '.join(f'`{c}`=%s' for c in d)} where `name`=%s",
				[*d.values(), name],
			)
		except Exception as e:
			if frappe.db.is_unique_key_violation(e):
				self.show_unique_validation_message(e)
			raise

	def show_unique_validation_message(self, e):
		fieldname = str(e).rsplit(".", 1)[-1]
		frappe.msgprint(_("{0} must be unique").format(self.meta.get_label(fieldname)))
		raise frappe.UniqueValidationError(self.doctype, self.name, e)

	def _fix_numeric_types(self):
		for df in self.meta.fields:
			if df.fieldtype == "Check":
				self.set(df.fieldname, cint(self.get(df.fieldname)))
			elif self.get(df.fieldname) is not None:
				if df.fieldtype == "Int":
					self.set(df.fieldname, cint(self.get(df.fieldname)))
				elif df.fieldtype in ("Float", "Currency", "Percent"):
					self.set(df.fieldname, flt(self.get(df.fieldname)))
		if self.docstatus is not None:
			self.docstatus = DocStatus(cint(self.docstatus))

	def _get_missing_mandatory_fields(self):
		def get_msg(df):
			if df.fieldtype in table_fields:
				return "{}: {}: {}".format(_("Error"), _("Data missing in table"), _(df.label))
			if self.get("parentfield"):
				return "{}: {} {} #{}: {}: {}".format(
					_("Error"),
					frappe.bold(_(self.doctype)),
					_("Row"),
					self.idx,
					_("Value missing for"),
					_(df.label),
				)
			return _("Error: Value missing for {0}: {1}").format(_(df.parent), _(df.label))

		missing = []
		for df in self.meta.get("fields", {"reqd": ("=", 1)}):
			value = self.get(df.fieldname)
			if value in (None, []) or not (strip_html(cstr(value)).strip() or "<img" in cstr(value)):
				missing.append((df.fieldname, get_msg(df)))
		if self.meta.istable:
			for fieldname in ("parent", "parenttype"):
				if not self.get(fieldname):
					missing.append((fieldname, get_msg(frappe._dict(label=fieldname))))
		return missing

	def get_invalid_links(self, is_submittable=False):
		"""Links/Dynamic Links whose target does not exist; fixes the case of existing ones."""
		invalid_links = []
		for df in self.meta.get_link_fields() + self.meta.get_dynamic_link_fields():
			docname = self.get(df.fieldname)
			if not docname:
				continue
			if df.fieldtype == "Link":
				doctype = df.options
			else:
				doctype = self.get(df.options)
				if not doctype:
					frappe.throw(_("{0} must be set first").format(self.meta.get_label(df.options)))
			meta = frappe.get_meta(doctype)
			if meta.is_virtual:
				values = frappe._dict(name=frappe.get_doc(doctype, docname).name)
			elif meta.issingle:
				values = frappe._dict(name=doctype)
			else:
				values = frappe._dict(name=frappe.db.get_value(doctype, docname, "name", cache=True))
			setattr(self, df.fieldname, values.name)
			if not values.name:
				msg = (
					f"{_('Row')} #{self.idx}: {_(df.label)}: {docname}"
					if self.get("parentfield")
					else f"{_(df.label)}: {docname}"
				)
				invalid_links.append((df.fieldname, docname, msg))
		return invalid_links, []

	def _validate_selects(self):
		if frappe.flags.in_import:
			return
		for df in self.meta.get_select_fields():
			if df.fieldname == "naming_series" or not (self.get(df.fieldname) and df.options):
				continue
			options = (df.options or "").split("\n")
			if not any(options):
				continue
			self.set(df.fieldname, cstr(self.get(df.fieldname)).strip())
			value = self.get(df.fieldname)
			if value not in options and not (frappe.flags.in_test and value.startswith("_T-")):
				prefix = _("Row #{0}:").format(self.idx) if self.get("parentfield") else ""
				label = _(self.meta.get_label(df.fieldname))
				comma_options = '", "'.join(_(each) for each in options)
				frappe.throw(
					_('{0} {1} cannot be "{2}". It should be one of "{3}"').format(
						prefix, label, value, comma_options
					)
				)

	def _validate_data_fields(self):
		for df in self.meta.fields:
			if df.fieldtype == "Data" and df.options == "Email" and self.get(df.fieldname):
				data = self.get(df.fieldname)
				if self.owner in frappe.STANDARD_USERS and data in frappe.STANDARD_USERS:
					continue
				for email in re.split(r"[,\n;]", data):
					if email.strip() and not EMAIL_PATTERN.match(email.strip()):
						frappe.throw(
							_("{0} is not a valid Email Address").format(email),
							frappe.InvalidEmailAddressError,
						)

	def _validate_length(self):
		if frappe.flags.in_install or self.meta.issingle:
			return
		for fieldname, value in self.get_valid_dict(ignore_virtual=True).items():
			df = self.meta.get_field(fieldname)
			if not df or df.fieldtype == "Check":
				continue
			if df.fieldtype in VARCHAR_TYPES:
				max_length = cint(df.get("length")) or 140
				if len(cstr(value)) > max_length:
					self.throw_length_exceeded_error(df, max_length, value)
			elif df.fieldtype in ("Int", "Long Int"):
				max_length = (
					2**63 - 1 if df.fieldtype == "Long Int" or cint(df.get("length")) > 11 else 2**31 - 1
				)
				if abs(cint(value)) > max_length:
					self.throw_length_exceeded_error(df, max_length, value)

	def throw_length_exceeded_error(self, df, max_length, value):
		if self.get("parentfield"):
			reference = _("{0}, Row {1}").format(_(self.doctype), self.idx)
		else:
			reference = f"{_(self.doctype)} {self.name}"
		frappe.throw(
			_("{0}: '{1}' ({3}) will get truncated, as max characters allowed is {2}").format(
				reference, frappe.bold(_(df.label)), max_length, value
			),
			frappe.CharacterLengthExceededError,
			title=_("Value too big"),
		)

	def _sync_autoname_field(self):
		_empty, _spec, fieldname = (self.meta.autoname or "").partition("field:")
		if fieldname and self.name and self.name != self.get(fieldname):
			self.set(fieldname, self.name)

	def get_value(self, fieldname):
		return self.get(fieldname)


class Document(BaseDocument):
	"""All controllers inherit from `Document`."""

	def __init__(self, *args, **kwargs):
		self.doctype = None
		self.name = None
		self.flags = frappe._dict()
		if args and args[0]:
			if isinstance(args[0], str):
				self.doctype = args[0]
				self.name = self.doctype if len(args) == 1 else args[1]
				self.flags.for_update = kwargs.get("for_update")
				self.load_from_db()
				return
			if isinstance(args[0], dict):
				kwargs = args[0]
		if kwargs:
			super().__init__(kwargs)
			self.init_child_tables()
			self.init_valid_columns()
		else:
			raise ValueError("Illegal arguments")

	def load_from_db(self):
		"""Load the row and child rows (SELECT ... FOR UPDATE when flags.for_update)."""
		self.flags.ignore_children = True
		if self.meta.issingle:
			single_doc = frappe.db.get_singles_dict(self.doctype, for_update=self.flags.for_update)
			if not single_doc:
				single_doc = new_doc(self.doctype, as_dict=True)
				single_doc["name"] = self.doctype
				del single_doc["__islocal"]
			super().__init__(single_doc)
			self.init_valid_columns()
			self._fix_numeric_types()
		else:
			kwargs = {"for_update": self.flags.for_update, "as_dict": True}
			if not isinstance(self.name, dict | list):
				kwargs["order_by"] = None
			d = frappe.db.get_value(self.doctype, self.name, "*", **kwargs)
			if not d:
				frappe.throw(
					_("{0} {1} not found").format(_(self.doctype), self.name), frappe.DoesNotExistError
				)
			super().__init__(d)
		self.flags.pop("ignore_children", None)
		for df in self.meta.get_table_fields():
			if frappe.get_meta(df.options).is_virtual:
				self.set(df.fieldname, [])
				continue
			children = frappe.db.get_values(
				df.options,
				{"parent": self.name, "parenttype": self.doctype, "parentfield": df.fieldname},
				"*",
				as_dict=True,
				order_by="idx asc",
				for_update=self.flags.for_update,
			)
			self.set(df.fieldname, children or [])
		if hasattr(self, "__setup__"):
			self.__setup__()
		return self

	def reload(self):
		return self.load_from_db()

	def check_permission(self, permtype="read", permlevel=None):
		if not self.has_permission(permtype):
			self.raise_no_permission_to(permtype)

	def has_permission(self, permtype="read", *, debug=False, user=None):
		if self.flags.ignore_permissions:
			return True
		import frappe.permissions

		return frappe.permissions.has_permission(self.doctype, permtype, self, user=user)

	def raise_no_permission_to(self, perm_type):
		frappe.flags.error_message = (
			_("Insufficient Permission for {0}").format(self.doctype) + f" ({frappe.bold(_(perm_type))})"
		)
		raise frappe.PermissionError

	def insert(
		self,
		ignore_permissions=None,
		ignore_links=None,
		ignore_if_duplicate=False,
		ignore_mandatory=None,
		set_name=None,
		set_child_names=True,
	):
		"""Insert as a new document, running Frappe 15's checks and hooks in its order."""
		self.flags.notifications_executed = []
		if ignore_permissions is not None:
			self.flags.ignore_permissions = ignore_permissions
		if ignore_links is not None:
			self.flags.ignore_links = ignore_links
		if ignore_mandatory is not None:
			self.flags.ignore_mandatory = ignore_mandatory
		self.set("__islocal", True)
		self._set_defaults()
		self.set_user_and_timestamp()
		self.set_docstatus()
		self.check_if_latest()
		self._validate_links()
		self.check_permission("create")
		self.run_method("before_insert")
		self.set_new_name(set_name=set_name, set_child_names=set_child_names)
		self.set_parent_in_children()
		self.flags.in_insert = True
		self.run_before_save_methods()
		self._validate()
		self.set_docstatus()
		self.flags.in_insert = False
		if getattr(self.meta, "issingle", 0):
			self.update_single(self.get_valid_dict())
		else:
			self.db_insert(ignore_if_duplicate=ignore_if_duplicate)
		for d in self.get_all_children():
			d.db_insert()
		self.run_method("after_insert")
		self.flags.in_insert = True
		self.run_post_save_methods()
		self.flags.in_insert = False
		if hasattr(self, "__islocal"):
			delattr(self, "__islocal")
		self.__dict__.pop("__islocal", None)
		self.__dict__.pop("__unsaved", None)
		return self

	def save(self, *args, **kwargs):
		return self._save(*args, **kwargs)

	def _save(self, ignore_permissions=None, ignore_version=None):
		"""Update the document: write permission, check_if_latest, links, hooks, checks, db update."""
		self.flags.notifications_executed = []
		if ignore_permissions is not None:
			self.flags.ignore_permissions = ignore_permissions
		self.flags.ignore_version = frappe.flags.in_test if ignore_version is None else ignore_version
		if self.get("__islocal") or not self.get("name"):
			return self.insert()
		self._set_defaults()
		self.check_permission("write", "save")
		self.set_user_and_timestamp()
		self.set_docstatus()
		self.check_if_latest()
		self.set_parent_in_children()
		self.set_name_in_children()
		self._validate_links()
		self.run_before_save_methods()
		if self._action != "cancel":
			self._validate()
		self.set_docstatus()
		if self.meta.issingle:
			self.update_single(self.get_valid_dict())
		else:
			self.db_update()
		self.update_children()
		self.run_post_save_methods()
		self.__dict__.pop("__unsaved", None)
		return self

	def update_children(self):
		for df in self.meta.get_table_fields():
			self.update_child_table(df.fieldname, df)

	def update_child_table(self, fieldname, df=None):
		df = df or self.meta.get_field(fieldname)
		all_rows = self.get(df.fieldname)
		if not (
			df.options in (self.flags.ignore_children_type or ()) or frappe.get_meta(df.options).is_virtual
		):
			existing = [row.name for row in all_rows if row.name and not row.is_new()]
			filters = {"parent": self.name, "parenttype": self.doctype, "parentfield": fieldname}
			if existing:
				filters["name"] = ("not in", existing)
			frappe.db.delete(df.options, filters)
		for d in all_rows:
			d.db_update()

	def get_doc_before_save(self):
		return getattr(self, "_doc_before_save", None)

	def set_new_name(self, force=False, set_name=None, set_child_names=True):
		if self.flags.name_set and not force:
			return
		autoname = self.meta.autoname or ""
		if self.get("__newname") and autoname.lower() == "prompt":
			self.name = validate_name(self.doctype, self.get("__newname"))
			self.flags.name_set = True
			return
		if set_name:
			self.name = validate_name(self.doctype, set_name)
		else:
			set_new_name(self)
		if set_child_names:
			for d in self.get_all_children():
				set_new_name(d)
		self.flags.name_set = True

	def set_title_field(self):
		if self.meta.get("title_field") == "title":
			df = self.meta.get_field("title")
			if not df:
				return
			values = {k: ("" if v is None else v) for k, v in self.as_dict().items()}
			if df.options:
				self.set(df.fieldname, df.options.format(**values))
			elif self.is_new() and not self.get(df.fieldname) and df.default:
				self.set(df.fieldname, df.default.format(**values))

	def update_single(self, d):
		frappe.db.delete("Singles", {"doctype": self.doctype})
		values = {f: normalize_value(self.meta.get_field(f) or std_field(f), v) for f, v in d.items()}
		values.pop("doctype", None)
		frappe.db.set_single_value(self.doctype, values, update_modified=False)

	def set_user_and_timestamp(self):
		self._original_modified = self.modified
		self.modified = now()
		self.modified_by = frappe.session.user
		if self.is_new() and not (
			frappe.flags.in_install or frappe.flags.in_patch or frappe.flags.in_migrate
		):
			self.creation = self.modified
			self.owner = self.modified_by
		for d in self.get_all_children():
			d.modified = self.modified
			d.modified_by = self.modified_by
			if not d.owner:
				d.owner = self.owner
			if not d.creation:
				d.creation = self.creation
		frappe.flags.currently_saving.append((self.doctype, self.name))

	def set_docstatus(self):
		if self.docstatus is None:
			self.docstatus = DocStatus.draft()
		for d in self.get_all_children():
			d.docstatus = self.docstatus

	def _validate(self):
		self._validate_mandatory()
		self._validate_data_fields()
		self._validate_selects()
		self._validate_length()
		self._sync_autoname_field()
		for d in self.get_all_children():
			d._validate_data_fields()
			d._validate_selects()
			d._validate_length()
			d._sync_autoname_field()
		if self.is_new():
			for fieldname in optional_fields:
				self.set(fieldname, None)

	def _set_defaults(self):
		if frappe.flags.in_import:
			return
		if self.is_new():
			self.update_if_missing(new_doc(self.doctype, as_dict=True))
		for df in self.meta.get_table_fields():
			defaults = new_doc(df.options, parent_doc=self, parentfield=df.fieldname, as_dict=True)
			value = self.get(df.fieldname)
			if isinstance(value, list):
				for d in value:
					if d.is_new():
						d.update_if_missing(defaults)

	def check_if_latest(self):
		"""Raise TimestampMismatchError if the row changed since this copy was loaded (locks the row)."""
		self.load_doc_before_save(raise_exception=True)
		self._action = "save"
		previous = self._doc_before_save
		if not previous:
			self.check_docstatus_transition(0)
			return
		if cstr(previous.modified) != cstr(self._original_modified):
			frappe.msgprint(
				_("Error: Document has been modified after you have opened it")
				+ (f" ({previous.modified}, {self.modified}). ")
				+ _("Please refresh to get the latest document."),
				raise_exception=frappe.TimestampMismatchError,
			)
		if not self.meta.issingle:
			self.check_docstatus_transition(previous.docstatus)

	def check_docstatus_transition(self, to_docstatus):
		if not self.docstatus:
			self.docstatus = DocStatus.draft()
		if to_docstatus == 0:
			if self.docstatus.is_draft():
				self._action = "save"
			elif self.docstatus.is_submitted():
				self._action = "submit"
				self.check_permission("submit")
			else:
				raise frappe.DocstatusTransitionError(
					_("Cannot change docstatus from 0 (Draft) to 2 (Cancelled)")
				)
		elif to_docstatus == 1:
			if self.docstatus.is_submitted():
				self._action = "update_after_submit"
				self.check_permission("submit")
			elif self.docstatus.is_cancelled():
				self._action = "cancel"
				self.check_permission("cancel")
			else:
				raise frappe.DocstatusTransitionError(
					_("Cannot change docstatus from 1 (Submitted) to 0 (Draft)")
				)
		elif to_docstatus == 2:
			raise frappe.ValidationError(_("Cannot edit cancelled document"))

	def set_parent_in_children(self):
		for d in self.get_all_children():
			d.parent = self.name
			d.parenttype = self.doctype

	def set_name_in_children(self):
		for d in self.get_all_children():
			if not d.name:
				set_new_name(d)

	def _validate_mandatory(self):
		if self.flags.ignore_mandatory:
			return
		missing = self._get_missing_mandatory_fields()
		for d in self.get_all_children():
			missing.extend(d._get_missing_mandatory_fields())
		if not missing:
			return
		for _idx, msg in missing:
			frappe.msgprint(msg)
		raise frappe.MandatoryError(
			f"[{self.doctype}, {self.name}]: {', '.join(each[0] for each in missing)}"
		)

	def _validate_links(self):
		if self.flags.ignore_links or self._action == "cancel":
			return
		invalid_links, _cancelled = self.get_invalid_links()
		for d in self.get_all_children():
			invalid_links.extend(d.get_invalid_links()[0])
		if invalid_links:
			msg = ", ".join(each[2] for each in invalid_links)
			frappe.throw(_("Could not find {0}").format(msg), frappe.LinkValidationError)

	def get_all_children(self, parenttype=None):
		children = []
		for df in self.meta.get_table_fields():
			if parenttype and df.options != parenttype:
				continue
			if value := self.get(df.fieldname):
				children.extend(value)
		return children

	def run_method(self, method, *args, **kwargs):
		"""Run a controller method plus `doc_events` hooks for it."""

		def fn(self, *args, **kwargs):
			method_object = getattr(self, method, None)
			if method in self.__dict__ or callable(method_object):
				return method_object(*args, **kwargs)

		fn.__name__ = str(method)
		return Document.hook(fn)(self, *args, **kwargs)

	run_trigger = run_method

	@staticmethod
	def hook(f):
		"""Compose `f` with the doc_events handlers of its name, collating return values."""

		def add_to_return_value(self, new_return_value):
			if new_return_value is None:
				self._return_value = self.get("_return_value")
				return
			if isinstance(new_return_value, dict):
				if not self.get("_return_value"):
					self._return_value = {}
				self._return_value.update(new_return_value)
			else:
				self._return_value = new_return_value

		def composer(self, *args, **kwargs):
			method = f.__name__
			doc_events = frappe.get_doc_hooks()
			handlers = doc_events.get(self.doctype, {}).get(method, []) + doc_events.get("*", {}).get(
				method, []
			)
			hooks = [frappe.get_attr(h) for h in handlers]
			add_to_return_value(self, f(self, *args, **kwargs))
			for h in hooks:
				add_to_return_value(self, h(self, method, *args, **kwargs))
			return self.__dict__.pop("_return_value", None)

		return composer

	def run_before_save_methods(self):
		if self._action in ("save", "submit"):
			self.run_method("before_validate")
		if self.flags.ignore_validate:
			return
		if self._action == "save":
			self.run_method("validate")
			self.run_method("before_save")
		elif self._action == "submit":
			self.run_method("validate")
			self.run_method("before_submit")
		elif self._action == "cancel":
			self.run_method("before_cancel")
		elif self._action == "update_after_submit":
			self.run_method("before_update_after_submit")
		self.set_title_field()

	def load_doc_before_save(self, *, raise_exception=False):
		self._doc_before_save = None
		if self.is_new():
			return
		try:
			self._doc_before_save = frappe.get_doc(self.doctype, self.name, for_update=True)
		except frappe.DoesNotExistError:
			if raise_exception:
				raise
			frappe.clear_last_message()

	def run_post_save_methods(self):
		if self._action == "save":
			self.run_method("on_update")
		elif self._action == "submit":
			self.run_method("on_update")
			self.run_method("on_submit")
		elif self._action == "cancel":
			self.run_method("on_cancel")
		elif self._action == "update_after_submit":
			self.run_method("on_update_after_submit")
		self.clear_cache()
		if self.flags.get("notify_update", True):
			self.notify_update()
		self.run_method("on_change")
		if (self.doctype, self.name) in frappe.flags.currently_saving:
			frappe.flags.currently_saving.remove((self.doctype, self.name))

	def clear_cache(self):
		frappe.clear_document_cache(self.doctype, self.name)

	def notify_update(self):
		"""Publish `doc_update` (and `list_update`) after commit."""
		if frappe.flags.in_patch:
			return
		frappe.publish_realtime(
			"doc_update",
			{"modified": self.modified, "doctype": self.doctype, "name": self.name},
			doctype=self.doctype,
			docname=self.name,
			after_commit=True,
		)
		if not self.meta.get("read_only") and not self.meta.get("issingle") and not self.meta.get("istable"):
			data = {"doctype": self.doctype, "name": self.name, "user": frappe.session.user}
			frappe.publish_realtime("list_update", data, after_commit=True)

	def db_set(self, fieldname, value=None, update_modified=True, notify=False, commit=False):
		"""Set and write values directly: no validation, no permission checks."""
		if isinstance(fieldname, dict):
			self.update(fieldname)
		else:
			self.set(fieldname, value)
		if update_modified and (self.doctype, self.name) not in frappe.flags.currently_saving:
			self.set("modified", now())
			self.set("modified_by", frappe.session.user)
		if not self.get_doc_before_save():
			self.load_doc_before_save()
		self.run_method("before_change")
		if self.name is None:
			return
		if self.meta.issingle:
			frappe.db.set_single_value(
				self.doctype,
				fieldname,
				value,
				modified=self.modified,
				modified_by=self.modified_by,
				update_modified=update_modified,
			)
		else:
			frappe.db.set_value(
				self.doctype,
				self.name,
				fieldname,
				value,
				self.modified,
				self.modified_by,
				update_modified=update_modified,
			)
		self.run_method("on_change")
		if notify:
			self.notify_update()
		if commit:
			frappe.db.commit()

	def delete(self, ignore_permissions=False, force=False, *, delete_permanently=False):
		return frappe.delete_doc(
			self.doctype,
			self.name,
			ignore_permissions=ignore_permissions,
			flags=self.flags,
			force=force,
			delete_permanently=delete_permanently,
		)

	def is_whitelisted(self, method_name):
		method = getattr(self, method_name, None)
		if not method:
			raise frappe.DoesNotExistError(f"Method {method_name} not found")
		frappe.is_whitelisted(getattr(method, "__func__", method))

	def set_onload(self, key, value):
		if not self.get("__onload"):
			self.set("__onload", frappe._dict())
		self.get("__onload")[key] = value

	def get_onload(self, key=None):
		if not key:
			return self.get("__onload", frappe._dict())
		return self.get("__onload")[key]

	def log_error(self, title=None, message=None):
		return frappe.log_error(
			title=title, message=message, reference_doctype=self.doctype, reference_name=self.name
		)

	def get_url(self):
		from frappe.utils import get_url_to_form

		return get_url_to_form(self.doctype, self.name)

	def __repr__(self):
		name = self.name or "unsaved"
		doctype = self.__class__.__name__
		docstatus = f" docstatus={self.docstatus}" if self.docstatus else ""
		parent = f" parent={self.parent}" if getattr(self, "parent", None) else ""
		return f"<{doctype}: {name}{docstatus}{parent}>"

	def __str__(self):
		return f"{self.doctype}({self.name or 'unsaved'})"
