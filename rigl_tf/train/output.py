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
"""A run's output directory: who writes there, and what a run leaves.

The chief (the only process of a one-machine run) writes checkpoints,
TensorBoard summaries (train/, eval/), operative_config.gin and report.json;
the other workers of a multi-worker run save their (collective) checkpoints
to a scratch directory, removed when they finish.
"""

import dataclasses
import json
import os

import gin
import tensorflow as tf

from rigl_tf import strategies


@dataclasses.dataclass
class Output:
  """Where a training run writes.

  Attributes:
    output_dir: the run's directory.
    chief: whether this process writes the run's files.
    created_output_dir: whether this run created `output_dir`.
    scratch_dir: where this process saves when it is not the chief.
    writer: TensorBoard writer of train/ (a no-op writer off the chief).
    eval_writer: TensorBoard writer of eval/.
  """
  output_dir: str
  chief: bool
  created_output_dir: bool
  scratch_dir: str
  writer: tf.summary.SummaryWriter
  eval_writer: tf.summary.SummaryWriter

  def save_dir(self, phase_dir):
    """Where this process saves the checkpoints of `phase_dir`."""
    if self.chief:
      return phase_dir
    return os.path.join(self.scratch_dir,
                        os.path.relpath(phase_dir, self.output_dir))


def prepare(strategy, output_dir):
  """Creates the output directory and the summary writers."""
  chief = strategies.is_chief(strategy)
  created = not tf.io.gfile.exists(output_dir)
  tf.io.gfile.makedirs(output_dir)
  scratch = output_dir
  if not chief:
    scratch = os.path.join(output_dir, '.worker_tmp',
                           str(strategy.cluster_resolver.task_id))

  def writer(name):
    if not chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(output_dir, name))

  return Output(output_dir=output_dir, chief=chief, created_output_dir=created,
                scratch_dir=scratch, writer=writer('train'),
                eval_writer=writer('eval'))


def remove_tree(path):
  """Removes a directory, local or remote (gs://); gone already is fine."""
  try:
    tf.io.gfile.rmtree(path)
  except tf.errors.NotFoundError:
    pass


def write_json(path, obj):
  """Writes `obj` as JSON to `path` atomically (a rename)."""
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def write_operative_config(output_dir):
  """Writes every gin value the run used to output_dir/operative_config.gin."""
  with tf.io.gfile.GFile(os.path.join(output_dir, 'operative_config.gin'),
                         'w') as f:
    f.write(gin.operative_config_str())


def finish(output, report):
  """Chief: writes the config and report; others: remove their scratch."""
  for writer in (output.writer, output.eval_writer):
    writer.flush()
  if output.chief:
    write_operative_config(output.output_dir)
    write_json(os.path.join(output.output_dir, 'report.json'), report)
    return
  remove_tree(output.scratch_dir)
  parent = os.path.dirname(output.scratch_dir)
  try:  # The last worker out removes the empty scratch parent.
    if not tf.io.gfile.listdir(parent):
      remove_tree(parent)
  except tf.errors.NotFoundError:
    pass
