"""Stand-in of `bench worker`: an RQ forking Worker on Frappe's queue names, without RQ's scheduler.

python tests/standin/worker.py --sites-path P [--queue default,short,long] [--burst]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--sites-path", required=True)
	parser.add_argument("--queue", default=None, help="comma separated queue types (default: all)")
	parser.add_argument("--burst", action="store_true")
	parser.add_argument("--quiet", action="store_true")
	parser.add_argument("--app-path", action="append", default=[], help="extra sys.path entries for apps")
	args = parser.parse_args(argv)
	for path in args.app_path:
		sys.path.insert(0, os.path.abspath(path))
	# bench workers run from the sites folder: execute_job calls frappe.connect(site) with sites_path "."
	os.chdir(os.path.abspath(args.sites_path))

	import frappe
	from frappe.utils.background_jobs import get_queue_list, get_redis_conn
	from rq import Worker

	with frappe.init_site():
		redis_connection = get_redis_conn()
		queues = get_queue_list(
			[q.strip() for q in args.queue.split(",")] if args.queue else None, build_queue_name=True
		)
	Worker(queues, connection=redis_connection).work(
		logging_level="WARNING" if args.quiet else "INFO",
		burst=args.burst,
		date_format="%Y-%m-%d %H:%M:%S",
		log_format="%(asctime)s,%(msecs)03d %(message)s",
		with_scheduler=False,  # as Frappe 16: delays come from Frappe's scheduler, never RQ's
	)


if __name__ == "__main__":
	main()
