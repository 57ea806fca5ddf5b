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
"""Checkpoints: save with the input position, restore, find the latest good.

A training phase checkpoints its model, its optimizer (the method's state is
tracked inside it) and, where the pipeline allows it, the position of its
input iterator, so that a resumed run continues the exact data order. A
checkpoint left truncated by a killed run is skipped for the previous
complete one; one that does not match the configured model is one line.
"""

import os
import re
import sys

from absl import logging
import tensorflow as tf

from rigl_tf import compat
from rigl_tf import data
from rigl_tf import flavours
from rigl_tf import optimizers as optimizers_lib
from rigl_tf.errors import UserError
from rigl_tf.train import loop as loop_lib


def checkpointable(obj):
  """What a checkpoint saves of a model or an optimizer stack.

  A tf_keras object itself. Of a Keras 3 one, its variables in order (the
  optimizer's with its method's state): build the optimizer first, its
  slots are variables too (`compat.keras3_checkpoint_view`).
  """
  if not flavours.is_keras3(obj):
    return obj
  if not isinstance(obj, flavours.classes('optimizers.Optimizer')):
    return compat.keras3_checkpoint_view(obj.variables)
  sparse = optimizers_lib.find_sparse_optimizer(obj)
  state = {} if sparse is None else {'method': sparse.updater}
  return compat.keras3_checkpoint_view(obj.variables, named=False, **state)


def _read_error(path):
  """Why checkpoint `path` cannot be read in full, in words; None if it can."""
  try:
    dtypes = tf.train.load_checkpoint(path).get_variable_to_dtype_map()
    # One restore op reads every tensor, the input pipeline's (variant)
    # state included, which the reader's get_tensor cannot convert.
    names = sorted(dtypes)
    tf.raw_ops.RestoreV2(prefix=path, tensor_names=names,
                         shape_and_slices=[''] * len(names),
                         dtypes=[dtypes[n] for n in names])
  except (tf.errors.OpError, ValueError, IndexError) as e:
    return ' '.join(str(e).split())[:200] or type(e).__name__
  return None


def is_readable(path):
  """Whether every tensor of checkpoint `path` can be read (not truncated)."""
  return _read_error(path) is None


def _listed(directory):
  """The checkpoint prefixes `directory`'s state file lists, oldest first."""
  state = tf.train.get_checkpoint_state(directory)
  if state is None:
    return []
  listed = list(state.all_model_checkpoint_paths)
  if state.model_checkpoint_path not in listed:
    listed.append(state.model_checkpoint_path)
  return [p if os.path.isabs(p) else os.path.join(directory, p)
          for p in listed]


def _previous_complete(path):
  """The newest readable checkpoint older than `path` in its directory."""
  listed = _listed(os.path.dirname(path))
  if path not in listed:
    return None  # Not a checkpoint of this directory's list.
  return next((p for p in reversed(listed[:listed.index(path)])
               if is_readable(p)), None)


def check_readable(path, flag=None):
  """Raises a `UserError` if checkpoint `path` is truncated or corrupt.

  Args:
    path: a checkpoint prefix.
    flag: the flag that selects a checkpoint, to suggest the previous
      complete one with (e.g. '--eval_once_ckpt'); None: none.
  """
  reason = _read_error(path)
  if reason is None:
    return
  previous = _previous_complete(path)
  hint = ''
  if previous:
    hint = f'; the previous complete checkpoint is {previous}'
    if flag:
      hint += f': pass {flag}={previous}'
  raise UserError(f'cannot read checkpoint {path}: it is truncated or '
                  f'corrupt ({reason}){hint}.')


def latest_complete(directory):
  """The newest readable checkpoint of `directory`, or None.

  A run killed while writing (or a full disk) can leave the latest
  checkpoint truncated: resume from the previous complete one, with a
  warning, rather than fail.

  Raises:
    UserError: when the directory has checkpoints and none is readable.
  """
  candidates = _listed(directory)
  for path in reversed(candidates):
    if is_readable(path):
      return path
    print(f'warning: checkpoint {path} is unreadable (truncated or '
          'corrupt); trying the previous one.', file=sys.stderr, flush=True)
  if candidates:
    raise UserError(f'no readable checkpoint in {directory}: every one is '
                    'truncated or corrupt. Use another --output_dir.')
  return None


def restore(checkpoint, path, flag=None, check=True):
  """Restores `path` into `checkpoint`; unreadable or a mismatch: `UserError`.

  Args:
    checkpoint: the `tf.train.Checkpoint` to restore into.
    path: the checkpoint prefix.
    flag: the flag that selects a checkpoint (see `check_readable`).
    check: read every tensor first (False: the caller did).

  Returns:
    The restore status.
  """
  if check:
    check_readable(path, flag)
  try:
    status = checkpoint.restore(path)
    status.assert_existing_objects_matched()
  except (tf.errors.OpError, IndexError) as e:
    reason = ' '.join(str(e).split())[:200]
    raise UserError(
        f'cannot read checkpoint {path}: it is truncated or corrupt '
        f'({reason}).') from e
  except (AssertionError, ValueError) as e:
    reason = ' '.join(str(e).split())[:300]
    raise UserError(
        f'checkpoint {path} does not match the configured model ({reason}). '
        'Use the gin config it was trained with (its operative_config.gin), '
        'or another --output_dir.') from e
  return status


def _warn_unused(status, path):
  """One warning line for checkpoint values this run has no variable for.

  Resuming builds every variable first (the optimizer's slots, the method's
  state), so a value left over means the checkpoint holds state of another
  configuration, e.g. another method or optimizer: it is ignored.
  """
  try:
    status.assert_consumed()
  except AssertionError as e:
    names = sorted(set(re.findall(r'\(root\)\.([\w.\-]+)', str(e))))
    shown = ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')
    print(f'warning: checkpoint {path} holds {len(names)} values this run '
          f'has no variable for ({shown}): they are ignored (written with '
          'another method or optimizer?).', file=sys.stderr, flush=True)
  status.expect_partial()


def has_input_position(path):
  """Whether checkpoint `path` saved the input pipeline's position."""
  names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  return any(name.startswith('train_iterator/') for name in names)


def checkpoint_step(path):
  """The number of a CheckpointManager prefix .../ckpt-<number>."""
  return int(path.rsplit('-', 1)[1])


def resolve_for_eval(eval_once_ckpt, output_dir):
  """The checkpoint prefix `--mode=eval_once` reads, or a `UserError`."""
  path = eval_once_ckpt or output_dir
  if path and tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise UserError(
          f'no checkpoint in {path}: train there first, or pass '
          '--eval_once_ckpt=<dir or .../ckpt-N prefix>.')
    return latest
  if path and tf.io.gfile.exists(path + '.index'):
    return path
  raise UserError(
      f'checkpoint {path!r} not found: pass --eval_once_ckpt=<dir or '
      '.../ckpt-N prefix> of an existing checkpoint, or the --output_dir of a '
      'finished training run.')


class Checkpointer:
  """Saves a phase's state and, where it can, the input position."""

  def __init__(self, trackables, directory, keep, step_counter,
               train_iterator):
    self._trackables = dict(trackables)
    self._directory = directory
    self._keep = keep
    self._step_counter = step_counter
    self.saves_input_position = train_iterator is not None
    self.manager = self._make_manager(train_iterator)

  def _make_manager(self, train_iterator):
    trackables = dict(self._trackables)
    if train_iterator is not None:
      trackables['train_iterator'] = train_iterator
    return tf.train.CheckpointManager(
        tf.train.Checkpoint(**trackables), self._directory,
        max_to_keep=self._keep, step_counter=self._step_counter)

  def save(self, number):
    """Saves checkpoint `number`; drops the input position if it cannot."""
    try:
      self.manager.save(checkpoint_number=number)
    except (tf.errors.FailedPreconditionError,
            tf.errors.UnimplementedError) as e:
      if not self.saves_input_position:
        raise
      logging.warning(
          'The input pipeline cannot be saved (%s); checkpoints keep the '
          'model and optimizer, and a resumed run reshuffles the data.',
          str(e).splitlines()[0])
      self.saves_input_position = False
      self.manager = self._make_manager(None)
      self.manager.save(checkpoint_number=number)


def restore_or_start(strategy, info, trackables, save_dir, restore_dir, keep,
                     step_counter, make_iterator, seed, variables):
  """Restores a phase's latest checkpoint, if any; (checkpointer, iterator).

  Small datasets: the input position is saved and a resumed phase continues
  the exact data order. Large ones, TPU's distributed iterators and
  pipelines that cannot be serialised (py_function): a resumed phase
  reshuffles with a step-dependent seed. Every worker resumes from the
  chief's checkpoints (`restore_dir`); the others save to scratch copies.

  Args:
    strategy: the run's strategy.
    info: the dataset's `data.DatasetInfo`.
    trackables: name -> trackable saved in every checkpoint.
    save_dir: where this process saves.
    restore_dir: where the chief saves (the phase's directory).
    keep: checkpoints kept.
    step_counter: the variable counting the phase's steps.
    make_iterator: fn(data seed) -> iterator over global batches.
    seed: the phase's data seed.
    variables: the variables `trackables['optimizer']` trains. Before a
      restore it creates their slots and its method's state (as the first
      step would), so that the checkpoint finds every variable it holds.

  Returns:
    (a `Checkpointer`, the training iterator, the restored path or None).
  """
  latest = latest_complete(restore_dir)
  optimizer = trackables['optimizer']
  if latest or flavours.is_keras3(optimizer):
    # Before a restore, and before a Keras 3 optimizer's variables are read.
    with strategy.scope():
      optimizer.build(variables)
  trackables = {name: checkpointable(value)
                for name, value in trackables.items()}
  iterator = None
  if (data.checkpoint_input_position(info)
      and not loop_lib.uses_distributed_dataset(strategy)
      and (latest is None or has_input_position(latest))):
    iterator = make_iterator(seed)
  checkpointer = Checkpointer(trackables, save_dir, keep, step_counter,
                              iterator)
  if latest:
    status = restore(checkpointer.manager.checkpoint, latest, check=False)
    _warn_unused(status, latest)
  if iterator is None:
    iterator = make_iterator(seed + 1_000_003 * int(step_counter.numpy()))
  return checkpointer, iterator, latest
