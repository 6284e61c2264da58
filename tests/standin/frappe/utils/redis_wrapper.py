"""`frappe.cache`: a redis.Redis subclass with Frappe's key prefix and pickled values."""

import pickle
from contextlib import suppress

import redis
from redis.exceptions import ConnectionError

import frappe


class RedisWrapper(redis.Redis):
	"""Frappe 15's RedisWrapper semantics: `{db_name}|key`, pickled values, request-local cache."""

	def __call__(self):
		return self

	def make_key(self, key, user=None, shared=False):
		if shared:
			return key
		if user:
			if user is True:
				user = frappe.session.user
			key = f"user:{user}:{key}"
		return f"{frappe.conf.db_name}|{key}".encode()

	def exists(self, *names, user=None, shared=None):
		"""Like Frappe's: the names are prefixed (a made key is prefixed twice)."""
		try:
			return super().exists(*(self.make_key(name, user=user, shared=shared) for name in names))
		except ConnectionError:
			return False

	def _local(self):
		if not hasattr(frappe.local, "cache"):
			frappe.local.cache = {}
		return frappe.local.cache

	def set_value(self, key, val, user=None, expires_in_sec=None, shared=False):
		key = self.make_key(key, user, shared)
		if not expires_in_sec:
			self._local()[key] = val
		with suppress(ConnectionError):
			self.set(key, pickle.dumps(val), ex=expires_in_sec or None)

	def get_value(self, key, generator=None, user=None, expires=False, shared=False):
		original_key = key
		key = self.make_key(key, user, shared)
		local_cache = self._local()
		if key in local_cache:
			return local_cache[key]
		val = None
		with suppress(ConnectionError):
			val = self.get(key)
		if val is not None:
			val = pickle.loads(val)
		if not expires:
			if val is None and generator:
				val = generator()
				self.set_value(original_key, val, user=user)
			else:
				local_cache[key] = val
		return val

	def delete_value(self, keys, user=None, make_keys=True, shared=False):
		if not keys:
			return
		if not isinstance(keys, list | tuple):
			keys = (keys,)
		if make_keys:
			keys = [self.make_key(k, shared=shared, user=user) for k in keys]
		for key in keys:
			self._local().pop(key, None)
		with suppress(ConnectionError):
			self.delete(*keys)

	def lpush(self, key, value):
		return super().lpush(self.make_key(key), value)

	def rpush(self, key, value):
		return super().rpush(self.make_key(key), value)

	def lpop(self, key):
		return super().lpop(self.make_key(key))

	def rpop(self, key):
		return super().rpop(self.make_key(key))

	def llen(self, key):
		return super().llen(self.make_key(key))

	def lrange(self, key, start, stop):
		return super().lrange(self.make_key(key), start, stop)

	def ltrim(self, key, start, stop):
		return super().ltrim(self.make_key(key), start, stop)

	def hset(self, name, key, value, shared=False, *args, **kwargs):
		if key is None:
			return
		_name = self.make_key(name, shared=shared)
		self._local().setdefault(_name, {})[key] = value
		with suppress(ConnectionError):
			super().hset(_name, key, pickle.dumps(value), *args, **kwargs)

	def hexists(self, name, key, shared=False):
		if key is None:
			return False
		return super().hexists(self.make_key(name, shared=shared), key)

	def hgetall(self, name):
		value = super().hgetall(self.make_key(name))
		return {key: pickle.loads(value) for key, value in value.items()}

	def hget(self, name, key, generator=None, shared=False):
		_name = self.make_key(name, shared=shared)
		local_cache = self._local()
		if _name not in local_cache:
			local_cache[_name] = {}
		if not key:
			return None
		if key in local_cache[_name]:
			return local_cache[_name][key]
		value = None
		with suppress(ConnectionError):
			value = super().hget(_name, key)
		if value is not None:
			value = pickle.loads(value)
			local_cache[_name][key] = value
		elif generator:
			value = generator()
			self.hset(name, key, value, shared=shared)
		return value

	def hdel(self, name, key, shared=False):
		_name = self.make_key(name, shared=shared)
		if _name in self._local():
			self._local()[_name].pop(key, None)
		with suppress(ConnectionError):
			super().hdel(_name, key)

	def hkeys(self, name):
		with suppress(ConnectionError):
			return super().hkeys(self.make_key(name))
		return []

	def sadd(self, name, *values):
		return super().sadd(self.make_key(name), *values)

	def srem(self, name, *values):
		return super().srem(self.make_key(name), *values)

	def sismember(self, name, value):
		return super().sismember(self.make_key(name), value)

	def smembers(self, name):
		return super().smembers(self.make_key(name))
