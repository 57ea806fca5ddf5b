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
used) and its checkpoints `ckpt-N`. `load_run` parses the config (whatever
the run's task: every task's gin models and pipelines are registered),
builds the same (masked) model as the trainer did, for the method's program
(Gem-Miner's fine-tuned gem lives in `finetune/`), and lists the checkpoints;
`SavedRun.restore(path)` loads one of them into the model. The tools that
work on finished runs (`rigl_tf.visualize`, `rigl_tf.export`) start here.
"""

import dataclasses
import os

import gin
import tensorflow as tf

from rigl_tf import data
from rigl_tf import tasks
from rigl_tf import train
from rigl_tf.errors import UserError
from rigl_tf.train import build
from rigl_tf.train import checkpoints
from rigl_tf.train import runners


@dataclasses.dataclass
class SavedRun:
  """A finished run's model and checkpoints.

  Attributes:
    output_dir: the run's directory.
    model: the model as the run built it (with `MaskedLayer`s when sparse).
    info: the dataset's `data.DatasetInfo` (input shape, classes).
    method: the run's sparse training method.
    checkpoints: checkpoint prefixes of the model, oldest first.
    config: the run's `train.RunConfig` (its dataset and preprocessing).
  """
  output_dir: str
  model: object
  info: data.DatasetInfo
  method: str
  checkpoints: list
  config: train.RunConfig = None

  def examples(self, split, count):
    """`count` images of `split` ('eval', 'train'), preprocessed as the run
    evaluated them (numpy float32)."""
    dataset = data.get_dataset(
        self.info.name, split, count, training=False,
        data_dir=self.config.data_dir,
        preprocess_fn=self.config.eval_preprocess_fn,
        manual_dir=self.config.manual_dir)
    return next(iter(dataset))[0].numpy()

  def restore(self, path, flag='--checkpoint', check=True):
    """Loads checkpoint `path` into `model` (model weights and masks).

    Args:
      path: the checkpoint prefix.
      flag: the flag that selects a checkpoint, named by the error of an
        unreadable one.
      check: read every tensor first (False: the caller did).

    Raises:
      UserError: the checkpoint is truncated, corrupt, or of another model.
    """
    if check:
      checkpoints.check_readable(path, flag)
    try:
      status = tf.train.Checkpoint(
          model=checkpoints.checkpointable(self.model)).restore(path)
      status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
      reason = ' '.join(str(e).split())[:300]
      raise UserError(
          f'checkpoint {path} does not match the model of '
          f'{self.output_dir}/operative_config.gin ({reason}).') from e
    status.expect_partial()  # The optimizer's state is not needed.


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
    UserError: no finished run there, or its config is unusable.
  """
  config_path = os.path.join(output_dir or '', 'operative_config.gin')
  if not output_dir or not tf.io.gfile.exists(config_path):
    raise UserError(
        f'no training run in {output_dir!r} (operative_config.gin missing): '
        'pass the --output_dir of a training run.')
  tasks.import_task_modules()
  gin.clear_config()
  with tf.io.gfile.GFile(config_path) as f:
    train.parse_gin([], [f.read()])
  config = train.RunConfig(output_dir=output_dir, data_dir=data_dir)
  if config.model_fn is None:
    raise UserError(f'{config_path} binds no train_eval.model_fn.')
  try:
    runner = runners.runner_for(config.method)
  except ValueError as e:
    raise UserError(f'{config_path}: {e}') from e
  strategy, info = build.strategy_and_info(config)
  model, directory = runner.model_for_checkpoints(config, strategy, info)
  checkpoints = list_checkpoints(directory)
  if not checkpoints:
    raise UserError(f'no checkpoint in {directory}.')
  return SavedRun(output_dir, model, info, config.method, checkpoints, config)
