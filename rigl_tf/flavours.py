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
"""The two Keras flavours rigl_tf trains: tf_keras (Keras 2) and Keras 3.

`pip install tensorflow` brings Keras 3 (`import keras`, and `tf.keras`
unless `TF_USE_LEGACY_KERAS=1` is set before its first use); TFMOT and the
tf_keras models of the RigL paper need Keras 2 (`import tf_keras`). Both
live in one process: rigl_tf imports each by name, never through
`tf.keras`. Keras 3 is used with its TensorFlow backend only.

Every algorithm of rigl_tf works on TensorFlow variables and tensors, the
same for both flavours. What differs is what Keras objects are: this module
names the flavour of an object (`of`) and gives the classes of both
flavours for one name (`classes('layers.Dense')`), so that the model walk,
the FLOP rules and the slot tables are written once, for both.

Model-building code that serves both flavours takes its Keras module from
`keras()`: tf_keras, or Keras 3 inside `building('keras3')` (the trainer's
`train_eval.keras`).
"""

import contextlib
import functools

import keras as keras3
import tf_keras

TF_KERAS = 'tf_keras'
KERAS3 = 'keras3'
NAMES = (TF_KERAS, KERAS3)
MODULES = {TF_KERAS: tf_keras, KERAS3: keras3}


def module(flavour):
  """The Keras module of a flavour name ('tf_keras' or 'keras3').

  Raises:
    ValueError: for another name.
  """
  if flavour not in MODULES:
    raise ValueError(f'Unknown Keras flavour {flavour!r}: use one of '
                     f'{", ".join(repr(n) for n in NAMES)}.')
  if flavour == KERAS3:
    check_keras3_backend()
  return MODULES[flavour]


# The flavour `keras()` gives; `building` pushes and pops.
_BUILDING = [TF_KERAS]


@contextlib.contextmanager
def building(flavour):
  """Inside, `keras()` is `flavour`'s module: models build in that flavour.

  Raises:
    ValueError: for an unknown flavour, or Keras 3 on another backend.
  """
  keras_module = module(flavour)
  _BUILDING.append(flavour)
  try:
    yield keras_module
  finally:
    _BUILDING.pop()


def keras():
  """The Keras module models are built with: tf_keras, or Keras 3 inside
  `building('keras3')`."""
  return MODULES[_BUILDING[-1]]


def current():
  """The name of `keras()`'s flavour ('tf_keras' or 'keras3')."""
  return _BUILDING[-1]


class _Building:
  """`keras()` as a module: `BUILDING.layers.Dense` is the Dense of the
  flavour being built, looked up when the code runs."""

  def __getattr__(self, name):
    return getattr(keras(), name)

  def __repr__(self):
    return f'<the Keras being built: {current()}>'


# Model builders write `keras = flavours.BUILDING` in place of an import.
BUILDING = _Building()


def per_flavour(define):
  """`define(keras_module)` -> classes, run once per flavour; returns
  fn() -> what it gave for `keras()`'s flavour.

  For the custom layers of model builders that serve both flavours: a
  layer class derives from one flavour's `Layer`.
  """
  defined = {}

  def get(flavour=None):
    name = flavour or current()
    if name not in defined:
      defined[name] = define(MODULES[name])
    return defined[name]

  return get


def check_keras3_backend():
  """Raises ValueError unless Keras 3 runs on TensorFlow."""
  backend = keras3.backend.backend()
  if backend != 'tensorflow':
    raise ValueError(
        f'Keras 3 runs on the {backend!r} backend here; rigl_tf trains Keras 3 '
        'models on TensorFlow only: unset KERAS_BACKEND or set it to '
        "'tensorflow'.")


@functools.cache
def classes(*paths):
  """The classes of both flavours named by `paths` ('layers.Dense', ...),
  one tuple (for isinstance).

  A name one flavour lacks (tf_keras' `layers.LocallyConnected2D`) gives
  the other's class alone.
  """
  found = []
  for path in paths:
    before = len(found)
    for keras_module in MODULES.values():
      value = keras_module
      for part in path.split('.'):
        value = getattr(value, part, None)
      if value is not None:
        found.append(value)
    if len(found) == before:
      raise AttributeError(f'Neither Keras flavour has {path!r}.')
  return tuple(found)


def class_pairs(paths):
  """[(class, path)] of both flavours for each name of `paths`, in order:
  the rows of a table keyed by class (FLOP rules, slot lists)."""
  return [(cls, path) for path in paths for cls in classes(path)]


_KERAS3_BASES = (keras3.layers.Layer, keras3.optimizers.Optimizer,
                 keras3.Variable)
_TF_KERAS_BASES = (tf_keras.layers.Layer, tf_keras.optimizers.Optimizer,
                   tf_keras.optimizers.legacy.Optimizer)


def of(obj):
  """'keras3' for a Keras 3 layer, model, optimizer or variable, 'tf_keras'
  for a tf_keras one, None for anything else."""
  if isinstance(obj, _KERAS3_BASES):
    return KERAS3
  if isinstance(obj, _TF_KERAS_BASES):
    return TF_KERAS
  return None


def is_keras3(obj):
  """Whether `obj` is a Keras 3 layer, model, optimizer or variable."""
  return isinstance(obj, _KERAS3_BASES)
