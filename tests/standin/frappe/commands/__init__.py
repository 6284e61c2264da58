"""`frappe.commands`: click context helpers used by app commands (`commands = [...]` in commands.py)."""

from functools import wraps

import click

import frappe


def pass_context(f):
	@wraps(f)
	def _func(ctx, *args, **kwargs):
		return f(frappe._dict(ctx.obj), *args, **kwargs)

	return click.pass_context(_func)


def get_site(context, raise_err=True):
	try:
		return context.sites[0]
	except (IndexError, TypeError):
		if raise_err:
			raise frappe.SiteNotSpecifiedError
		return None
