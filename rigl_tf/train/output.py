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
import functools
import json
import os
import uuid

import gin
import tensorflow as tf

from rigl_tf import strategies
from rigl_tf.errors import UserError


@dataclasses.dataclass
class Output:
  """Where a training run writes.

  Attributes:
    output_dir: the run's directory.
    chief: whether this process writes the run's files.
    created_output_dir: whether this run created `output_dir`.
    scratch_dir: where this process saves when it is not the chief.
  """
  output_dir: str
  chief: bool
  created_output_dir: bool
  scratch_dir: str

  # The TensorBoard writers open their event files on first use: a run
  # refused at its restore leaves none behind.
  @functools.cached_property
  def writer(self):
    """TensorBoard writer of train/ (a no-op writer off the chief)."""
    return self._writer('train')

  @functools.cached_property
  def eval_writer(self):
    """TensorBoard writer of eval/."""
    return self._writer('eval')

  def _writer(self, name):
    if not self.chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(self.output_dir, name))

  def save_dir(self, phase_dir):
    """Where this process saves the checkpoints of `phase_dir`."""
    if self.chief:
      return phase_dir
    return os.path.join(self.scratch_dir,
                        os.path.relpath(phase_dir, self.output_dir))


def _unwritable_reason(path, error):
  """Why `path` cannot be a directory this process writes in, in words."""
  if isinstance(error, tf.errors.PermissionDeniedError):
    return 'permission denied'
  if 'read-only file system' in str(error).lower():
    return 'read-only file system'
  ancestor = path
  while ancestor and not tf.io.gfile.exists(ancestor):
    parent = os.path.dirname(ancestor.rstrip('/'))
    if parent == ancestor:
      break
    ancestor = parent
  if ancestor and not tf.io.gfile.isdir(ancestor):
    return f'{ancestor} is a file, not a directory'
  return ' '.join(str(error).split())[:200]


def make_writable_dir(path, what):
  """Creates directory `path` (if needed) and checks it can be written.

  Args:
    path: the directory.
    what: how the user named it, e.g. '--output_dir'.

  Raises:
    UserError: a file is in the way, or the directory is not writable.
  """
  if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
    # makedirs would accept an existing file.
    raise UserError(f'cannot write to {what} {path}: it is a file, not a '
                    'directory. Pass a directory you can write in.')
  # A name of its own: the workers of a multi-worker run may check at once.
  probe = os.path.join(path, f'.rigl_tf_write_check_{uuid.uuid4().hex}')
  try:
    tf.io.gfile.makedirs(path)
    with tf.io.gfile.GFile(probe, 'w') as f:
      f.write('')
    tf.io.gfile.remove(probe)
  except tf.errors.OpError as e:
    raise UserError(
        f'cannot write to {what} {path}: {_unwritable_reason(path, e)}. '
        'Pass a directory you can write in.') from e


def prepare(strategy, output_dir):
  """Creates the (writable) output directory; the run's `Output`."""
  chief = strategies.is_chief(strategy)
  created = not tf.io.gfile.exists(output_dir)
  if chief:
    make_writable_dir(output_dir, '--output_dir')
  else:  # It writes to its scratch directory only.
    tf.io.gfile.makedirs(output_dir)
  scratch = output_dir
  if not chief:
    scratch = os.path.join(output_dir, '.worker_tmp',
                           str(strategy.cluster_resolver.task_id))
  return Output(output_dir=output_dir, chief=chief, created_output_dir=created,
                scratch_dir=scratch)


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
