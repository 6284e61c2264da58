"""`frappe.utils.background_jobs` on real RQ: queue names, job ids and job wrapper of Frappe 15.101, and of
Frappe 16 under RQ 2 (its pins): ids `{site}||{id}`, a queue-size limit by default."""

import os
import time
from collections.abc import Callable
from functools import lru_cache
from uuid import uuid4

import redis
from redis.exceptions import ConnectionError
from rq import Callback, Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

import frappe
from frappe import _
from frappe.utils import CallbackManager, cint, get_bench_id, get_sites

RQ_JOB_FAILURE_TTL = 7 * 24 * 60 * 60
RQ_RESULTS_TTL = 10 * 60
MAX_QUEUED_JOBS = 500
V16 = frappe.__version__.startswith("16.")
_redis_queue_conn = {}


@lru_cache
def _queues_timeout(workers_config):
	default_timeout = 300
	return {
		"short": default_timeout,
		"default": default_timeout,
		"long": 1500,
		**{worker: dict(config).get("timeout", default_timeout) for worker, config in workers_config},
	}


def get_queues_timeout():
	workers = frappe.get_conf().get("workers", {})
	return _queues_timeout(tuple((k, tuple(v.items())) for k, v in workers.items()))


def enqueue(
	method,
	queue="default",
	timeout=None,
	event=None,
	is_async=True,
	job_name=None,
	now=False,
	enqueue_after_commit=False,
	*,
	on_success=None,
	on_failure=None,
	at_front=False,
	job_id=None,
	deduplicate=False,
	**kwargs,
):
	"""Push `method(**kwargs)` to an RQ queue, or call it inline for `now` / `is_async=False` outside tests."""
	is_async = kwargs.pop("async", is_async)
	if deduplicate:
		if not job_id:
			frappe.throw(_("`job_id` paramater is required for deduplication."))
		job = get_job(job_id)
		if job and job.get_status() in (JobStatus.QUEUED, JobStatus.STARTED):
			return
		elif job:
			job.delete()
	job_id = create_job_id(job_id)
	call_directly = now or (not is_async and not frappe.flags.in_test)
	if call_directly:
		return frappe.call(method, **kwargs)
	try:
		q = get_queue(queue, is_async=is_async)
	except ConnectionError:
		if frappe.local.flags.in_migrate:
			return frappe.call(method, **kwargs)
		raise
	_check_queue_size(q)
	if not timeout:
		timeout = get_queues_timeout().get(queue) or 300
	method_name = f"{method.__module__}.{method.__qualname__}" if isinstance(method, Callable) else method
	queue_args = {
		"site": frappe.local.site,
		"user": frappe.session.user,
		"method": method,
		"event": event,
		"job_name": job_name or method_name,
		"is_async": is_async,
		"kwargs": kwargs,
	}
	on_failure = on_failure or truncate_failed_registry

	def enqueue_call():
		return q.enqueue_call(
			execute_job,
			on_success=Callback(func=on_success) if on_success else None,
			on_failure=Callback(func=on_failure) if on_failure else None,
			timeout=timeout,
			kwargs=queue_args,
			at_front=at_front,
			failure_ttl=frappe.conf.get("rq_job_failure_ttl") or RQ_JOB_FAILURE_TTL,
			result_ttl=frappe.conf.get("rq_results_ttl") or RQ_RESULTS_TTL,
			job_id=job_id,
		)

	if enqueue_after_commit:
		frappe.db.after_commit.add(enqueue_call)
		return
	return enqueue_call()


def execute_job(site, method, event, job_name, kwargs, user=None, is_async=True, retry=0):
	"""Job wrapper: connect, set user, run, commit (or rollback + Error Log + re-raise), destroy."""
	retval = None
	if is_async:
		frappe.connect(site)
		if os.environ.get("CI"):
			frappe.flags.in_test = True
		if user:
			frappe.set_user(user)
	if isinstance(method, str):
		method_name = method
		method = frappe.get_attr(method)
	else:
		method_name = f"{method.__module__}.{method.__qualname__}"
	frappe.local.job = frappe._dict(
		site=site,
		method=method_name,
		job_name=job_name,
		kwargs=kwargs,
		user=user,
		after_job=CallbackManager(),
	)
	for before_job_task in frappe.get_hooks("before_job"):
		frappe.call(before_job_task, method=method_name, kwargs=kwargs, transaction_type="job")
	try:
		retval = method(**kwargs)
	except (frappe.db.InternalError, frappe.RetryBackgroundJobError) as e:
		frappe.db.rollback()
		if retry < 5 and (
			isinstance(e, frappe.RetryBackgroundJobError)
			or frappe.db.is_deadlocked(e)
			or frappe.db.is_timedout(e)
		):
			frappe.destroy()
			time.sleep(retry + 1)
			return execute_job(site, method, event, job_name, kwargs, is_async=is_async, retry=retry + 1)
		frappe.log_error(title=method_name)
		raise
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title=method_name)
		frappe.db.commit()
		print(frappe.get_traceback())
		raise
	else:
		frappe.db.commit()
		return retval
	finally:
		for after_job_task in frappe.get_hooks("after_job"):
			frappe.call(after_job_task, method=method_name, kwargs=kwargs, result=retval)
		frappe.local.job.after_job.run()
		if is_async:
			frappe.destroy()


def truncate_failed_registry(job, connection, type, value, traceback):
	"""Keep only the newest 1000 failed jobs, like Frappe."""
	from rq.registry import FailedJobRegistry

	for queue in get_queues(connection=connection):
		registry = FailedJobRegistry(queue=queue)
		failed = registry.get_job_ids()
		for job_id in failed[: max(0, len(failed) - 1000)]:
			registry.remove(job_id, delete_job=True)


def get_queue_list(queue_list=None, build_queue_name=False):
	default_queue_list = list(get_queues_timeout())
	if queue_list:
		if isinstance(queue_list, str):
			queue_list = [queue_list]
		for queue in queue_list:
			validate_queue(queue, default_queue_list)
	else:
		queue_list = default_queue_list
	return [generate_qname(qtype) for qtype in queue_list] if build_queue_name else queue_list


def get_queue(qtype, is_async=True):
	validate_queue(qtype)
	return Queue(generate_qname(qtype), connection=get_redis_conn(), is_async=is_async)


def validate_queue(queue, default_queue_list=None):
	if not default_queue_list:
		default_queue_list = list(get_queues_timeout())
	if queue not in default_queue_list:
		frappe.throw(_("Queue should be one of {0}").format(", ".join(default_queue_list)))


def get_redis_conn(username=None, password=None):
	if not hasattr(frappe.local, "conf"):
		raise Exception("You need to call frappe.init")
	if not frappe.local.conf.redis_queue:
		raise Exception("redis_queue missing in common_site_config.json")
	return get_redis_connection_without_auth()


def get_redis_connection_without_auth():
	url = frappe.conf.redis_queue
	if url not in _redis_queue_conn:
		_redis_queue_conn[url] = redis.from_url(url)
	return _redis_queue_conn[url]


def get_queues(connection=None):
	accessible = {generate_qname(q) for q in get_queues_timeout()}
	return [q for q in Queue.all(connection=connection or get_redis_conn()) if q.name in accessible]


def generate_qname(qtype):
	"""RQ queue name `{bench_id}:{queue}`."""
	if isinstance(qtype, list):
		qtype = ",".join(qtype)
	return f"{get_bench_id()}:{qtype}"


def _check_queue_size(q):
	"""15.101: only with site config `max_queued_jobs`; 16: that or 500, plus 50 per site of the bench."""
	limit = cint(frappe.conf.max_queued_jobs) or (MAX_QUEUED_JOBS if V16 else 0)
	limit += 50 * len(get_sites()) if V16 else 0
	if limit and q.count >= limit:
		message = _("Too many queued background jobs ({0}). Please retry after some time.").format(limit)
		frappe.throw(message, title=_("Queue Overloaded"), exc=frappe.QueueOverloaded)


def create_job_id(job_id=None):
	"""Namespace job ids per site: `{site}::{job_id}` (16: `{site}||{job_id}`, RQ 2 rejects ":")."""
	job_id = job_id or str(uuid4())
	return f"{frappe.local.site}||{job_id.replace(':', '|')}" if V16 else f"{frappe.local.site}::{job_id}"


def is_job_enqueued(job_id):
	return get_job_status(job_id) in (JobStatus.QUEUED, JobStatus.STARTED)


def get_job_status(job_id):
	job = get_job(job_id)
	if job:
		return job.get_status()


def get_job(job_id):
	try:
		return Job.fetch(create_job_id(job_id), connection=get_redis_conn())
	except NoSuchJobError:
		return None
