# Copyright 2026 The rigl_tf Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The one registry of sparse training methods: name -> class.

A method module registers its class with `@register('name')`; the trainer,
the flops CLI and gin look methods up here by name (`train_eval.method =
'rigl'`). This module imports no method: `rigl_tf.methods` (the package)
imports them all, so that every one is registered.
"""

_REGISTRY = {}


def register(name):
  """Class decorator: registers a method class under `name`.

  Also sets the class's `method_name`, which reports and checkpoints use.

  Args:
    name: the method's name, e.g. 'rigl'.

  Returns:
    The decorator.

  Raises:
    ValueError: if `name` is registered already.
  """

  def decorator(cls):
    if name in _REGISTRY:
      raise ValueError(f'Method {name!r} is registered twice.')
    _REGISTRY[name] = cls
    cls.method_name = name
    return cls

  return decorator


def unregister(name):
  """Removes method `name` (for tests that register a throw-away method)."""
  _REGISTRY.pop(name)


def names():
  """Registered method names, sorted."""
  return sorted(_REGISTRY)


def get_class(method):
  """The class registered as `method`.

  Args:
    method: a registered name ('rigl'), in any case ('RigL'), or the class
      name gin configures ('RigL', 'Static').

  Returns:
    The method's class.

  Raises:
    ValueError: for an unknown method name.
  """
  if method not in _REGISTRY:
    by_class_name = {cls.__name__: name for name, cls in _REGISTRY.items()}
    method = by_class_name.get(method, str(method).lower())
  if method not in _REGISTRY:
    raise ValueError(f'Unknown sparse training method {method!r}; choose one '
                     f'of: {", ".join(names())}.')
  return _REGISTRY[method]


def create(method, **kwargs):
  """Instantiates the method registered as `method` (gin fills the rest)."""
  return get_class(method)(**kwargs)
