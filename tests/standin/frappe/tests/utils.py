"""Minimal `frappe.tests.utils.FrappeTestCase`: rolls back once per class, like Frappe 15."""

import unittest

import frappe


class FrappeTestCase(unittest.TestCase):
	@classmethod
	def setUpClass(cls):
		cls.TEST_SITE = getattr(frappe.local, "site", None)
		frappe.db.commit()
		super().setUpClass()

	@classmethod
	def tearDownClass(cls):
		frappe.db.rollback()
		frappe.set_user("Administrator")
		super().tearDownClass()
