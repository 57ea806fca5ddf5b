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
"""The model of a finished training run, rebuilt from its output directory.

A run's `--output_dir` holds `operative_config.gin` (every value the run
used) and its checkpoints `ckpt-N`. `load_run` parses the config, builds the
same (masked) model as `train_lib` did and lists the checkpoints;
`SavedRun.restore(path)` loads one of them into the model. The tools that
work on finished runs (`rigl_tf.visualize`, `rigl_tf.export`) start here.
"""

import dataclasses
import os

import gin
import tensorflow as tf

from rigl_tf import data
from rigl_tf import layers as masked_layers
from rigl_tf import train_lib
from rigl_tf import updaters

# Modules whose gin configurables a run's model_fn may name.
_MODEL_MODULES = ('mnist.models',)


@dataclasses.dataclass
class SavedRun:
  """A finished run's model and checkpoints.

  Attributes:
    output_dir: the run's directory.
    model: the model as the run built it (with `MaskedLayer`s when sparse).
    info: the dataset's `data.DatasetInfo` (input shape, classes).
    method: the run's sparse training method.
    checkpoints: checkpoint prefixes, oldest first.
  """
  output_dir: str
  model: object
  info: data.DatasetInfo
  method: str
  checkpoints: list

  def restore(self, path):
    """Loads checkpoint `path` into `model` (model weights and masks).

    Raises:
      train_lib.UserError: the checkpoint holds another model.
    """
    try:
      status = tf.train.Checkpoint(model=self.model).restore(path)
      status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      reason = ' '.join(str(e).split())[:300]
      raise train_lib.UserError(
          f'checkpoint {path} does not match the model of '
          f'{self.output_dir}/operative_config.gin ({reason}).') from e
    status.expect_partial()  # The optimizer's state is not needed.


def _import_model_modules():
  import importlib  # pylint: disable=g-import-not-at-top

  for name in _MODEL_MODULES:
    importlib.import_module(name)


def list_checkpoints(output_dir):
  """Checkpoint prefixes in `output_dir`, oldest first (may be empty)."""
  state = tf.train.get_checkpoint_state(output_dir)
  if state is None:
    return []
  return [p if os.path.isabs(p) else os.path.join(output_dir, p)
          for p in state.all_model_checkpoint_paths]


def load_run(output_dir, data_dir=None):
  """Rebuilds the model of the run in `output_dir` (weights not restored).

  Clears and replaces gin's global configuration with the run's.

  Args:
    output_dir: a training run's `--output_dir`.
    data_dir: tensorflow_datasets data_dir (for the dataset's shapes).

  Returns:
    A `SavedRun`.

  Raises:
    train_lib.UserError: no finished run there, or its config is unusable.
  """
  config = os.path.join(output_dir or '', 'operative_config.gin')
  if not output_dir or not tf.io.gfile.exists(config):
    raise train_lib.UserError(
        f'no training run in {output_dir!r} (operative_config.gin missing): '
        'pass the --output_dir of a training run.')
  checkpoints = list_checkpoints(output_dir)
  if not checkpoints:
    raise train_lib.UserError(f'no checkpoint in {output_dir}.')
  _import_model_modules()
  gin.clear_config()
  with tf.io.gfile.GFile(config) as f:
    train_lib.parse_gin([], [f.read()])
  model_fn = gin.query_parameter('train_eval.model_fn')
  if model_fn is None:
    raise train_lib.UserError(f'{config} binds no train_eval.model_fn.')
  dataset = gin.query_parameter('train_eval.dataset')
  method = gin.query_parameter('train_eval.method')
  try:
    info = data.get_info(dataset, data_dir)
  except data.DatasetUnavailableError as e:
    raise train_lib.UserError(str(e)) from e
  model = model_fn.scoped_configurable_fn(input_shape=info.input_shape,
                                          num_classes=info.num_classes)
  if updaters.get_updater_class(method).sparse:
    model = masked_layers.sparsify(model)
  if not model.built:
    model.build((None,) + tuple(info.input_shape))
  return SavedRun(output_dir, model, info, method, checkpoints)
