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
"""The task folders' models, for the tools that build a model by name.

The library itself never imports a task folder (`mnist/`, `cifar_wrn/`,
`imagenet_resnet/`); the entry points that rebuild a run's model or count a
model by name do, through this table: `import_task_modules` registers every
task's gin configurables (models and input pipelines), so that a run's
`operative_config.gin` parses whatever its task; `build_model` builds one
of the named models (or any 'package.module:function' builder).
"""

from collections.abc import Callable
import importlib
import sys

import tf_keras as keras

# The modules whose import registers a task's gin models and pipelines.
TASK_MODULES = ('mnist.models', 'cifar_wrn.configurables',
                'imagenet_resnet.configurables')


def import_task_modules():
  """Imports every task's gin configurables (models, input pipelines)."""
  for name in TASK_MODULES:
    importlib.import_module(name)


def _builder(module_name, function_name, **kwargs):
  """A builder that imports its task module only when called."""

  def build():
    module = importlib.import_module(module_name)
    return getattr(module, function_name)(**kwargs)

  return build


_RESNET = 'imagenet_resnet.resnet_model'
_MOBILENET = 'imagenet_resnet.mobilenet_model'
_CIFAR = 'cifar_wrn.wrn_model'

# Model name -> builder of every task folder's model (`tests/tasks_test.py`
# checks that none is missing).
MODEL_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    **{f'resnet{depth}': _builder(_RESNET, f'resnet{depth}')
       for depth in (18, 34, 50, 101, 152)},
    'mobilenet_v1': _builder(_MOBILENET, 'mobilenet_v1'),
    'mobilenet_v2': _builder(_MOBILENET, 'mobilenet_v2'),
    'wrn_22_2': _builder(_CIFAR, 'wrn_22_2'),
    'wrn_28_10': _builder(_CIFAR, 'wrn_28_10'),
    'resnet20': _builder(_CIFAR, 'resnet20'),
    'cifar_resnet': _builder(_CIFAR, 'cifar_resnet'),
    'lenet_300_100': _builder('mnist.models', 'lenet_300_100',
                              input_shape=(784,), num_classes=10),
    'lenet5': _builder('mnist.models', 'lenet5'),
    'vit': _builder('mnist.models', 'vit'),
}


def build_model(name: str) -> keras.Model:
  """The model a `--model` value names.

  Args:
    name: a key of `MODEL_BUILDERS`, or 'package.module:function', the
      import path of a function that takes no argument and returns a built
      tf_keras model (the module is imported from the current directory or
      PYTHONPATH).

  Returns:
    The built model.

  Raises:
    ValueError: for an unknown name, a module or function that cannot be
      imported, or a builder that does not return a tf_keras model.
  """
  if name in MODEL_BUILDERS:
    return MODEL_BUILDERS[name]()
  if ':' not in name:
    raise ValueError(
        f'Unknown model {name!r}: choose one of '
        f'{", ".join(sorted(MODEL_BUILDERS))}, or give a builder function '
        "as 'package.module:function'.")
  module_name, function_name = name.split(':', 1)
  if '' not in sys.path:
    sys.path.insert(0, '')  # python -m does; a console script may not.
  try:
    builder = getattr(importlib.import_module(module_name), function_name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f'Cannot import model builder {name!r}: {e}') from e
  model = builder()
  if not isinstance(model, keras.Model):
    raise ValueError(f'{name} returned {type(model).__name__}, not a '
                     'tf_keras Model (import tf_keras as keras).')
  return model
