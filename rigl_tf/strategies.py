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
"""The `tf.distribute` strategy for a `--strategy` flag value."""

import tensorflow as tf

from rigl_tf import compat

STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')


def get_strategy(name='default', tpu=None):
  """Returns the strategy named `name`.

  Args:
    name: 'default' (one device), 'mirrored' (all local GPUs; on a machine
      without GPUs, all logical CPU devices), 'multi_worker'
      (MultiWorkerMirroredStrategy, configured by the TF_CONFIG environment
      variable) or 'tpu' (TPUStrategy).
    tpu: the TPU name or address for 'tpu' ('' or None: local / from the
      environment).

  Returns:
    A `tf.distribute.Strategy`.

  Raises:
    ValueError: for an unknown name.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    if tf.config.list_logical_devices('GPU'):
      return mirrored_strategy()
    return mirrored_strategy(
        [d.name for d in tf.config.list_logical_devices('CPU')])
  if name == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'tpu':
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or '')
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f'Unknown strategy {name!r}; choose one of '
                   f'{", ".join(STRATEGIES)}.')


def mirrored_strategy(devices=None):
  """A `MirroredStrategy` whose collectives cannot meet another one's.

  TensorFlow numbers the collective groups of every `MirroredStrategy` in a
  process from the same start, so a second strategy (a test suite, a
  notebook that builds two models) can be matched with the first one's
  cached collective instances ("Shape mismatch in the collective instance"),
  which aborts every later collective of the process. Each strategy made
  here gets its own range of keys, as TensorFlow's own tests do.

  Args:
    devices: device names; None: all local GPUs (or the CPU).

  Returns:
    A `tf.distribute.MirroredStrategy`.
  """
  compat.separate_collective_keys()
  return tf.distribute.MirroredStrategy(devices)


def is_chief_task(task_type, task_id, cluster_has_chief):
  """Whether a task writes the run's files (TF's multi-worker convention).

  The 'chief' task when the cluster has one, else worker 0; a process with
  no task (single machine) is its own chief.
  """
  if task_type is None or task_type == 'chief':
    return True
  return task_type == 'worker' and task_id == 0 and not cluster_has_chief


def is_chief(strategy):
  """Whether this process writes checkpoints, summaries and reports."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  cluster = resolver.cluster_spec().as_dict()
  return is_chief_task(resolver.task_type, resolver.task_id,
                       'chief' in cluster)


def silences_start_up(name):
  """Whether device start-up logs may be hidden for strategy `name`.

  Multi-worker and TPU start-up can fail in native code (unreachable peers,
  no TPU): their logs stay visible.
  """
  return name in ('default', 'mirrored')
