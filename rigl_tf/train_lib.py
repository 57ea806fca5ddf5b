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
"""The shared training and evaluation loop of every `train_eval.py`.

One canonical trainer (big_vision style): a task script defines its models
as gin configurables and calls `run(argv)`. Everything a run needs is bound
with gin (`--gin_config`, `--gin_bindings`) on `train_eval` and
`make_optimizer`; the flags say where and how to run:

  --output_dir   checkpoints, TensorBoard summaries (train/, eval/),
                 operative_config.gin, report.json
  --mode         train | train_and_eval | eval_once | eval (continuous:
                 follows the checkpoints a training run writes)
  --strategy     default | mirrored | multi_worker | tpu

A run resumes from the latest checkpoint in `--output_dir`. Bad input ends
with one line on stderr (`error: ...`) and exit status 1.
"""

import contextlib
import dataclasses
import datetime
import inspect
import json
import math
import os
import re
import sys
import time
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import gin
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras

from rigl_tf import data
from rigl_tf import distributions
from rigl_tf import flops
from rigl_tf import gem_miner  # noqa: F401  (registers 'gem_miner')
from rigl_tf import layers as masked_layers
from rigl_tf import masks
from rigl_tf import optimizers as optimizers_lib
from rigl_tf import pictures as pictures_lib
from rigl_tf import quiet as quiet_lib
from rigl_tf import strategies
from rigl_tf import updaters

MODES = ('train', 'train_and_eval', 'eval_once', 'eval')
# Mixed-precision choices: compute dtype -> Keras policy.
MIXED_PRECISION = {'bfloat16': 'mixed_bfloat16',
                   'float16': 'mixed_float16'}


class UserError(Exception):
  """Bad input or an unusable run: reported as one line, exit status 1."""


def define_flags():
  """Defines the flags shared by every task's train_eval.py."""
  flags.DEFINE_multi_string(
      'gin_config', [], 'Gin config file; repeatable, later ones override.')
  flags.DEFINE_multi_string(
      'gin_bindings', [],
      'Gin binding, e.g. "train_eval.sparsity = 0.95"; repeatable, applied '
      'after the config files.')
  flags.DEFINE_string(
      'output_dir', None,
      'Directory for checkpoints, summaries, operative_config.gin and '
      'report.json. A run resumes from the latest checkpoint here.')
  flags.DEFINE_string('mode', 'train_and_eval', f'One of {MODES}.')
  flags.DEFINE_string('strategy', 'default',
                      f'One of {strategies.STRATEGIES}.')
  flags.DEFINE_string(
      'eval_once_ckpt', None,
      'For --mode=eval_once: a checkpoint prefix (.../ckpt-1000) or a '
      'directory (its latest); default: the latest in --output_dir.')
  flags.DEFINE_string('data_dir', None, 'tensorflow_datasets data_dir.')
  flags.DEFINE_string(
      'manual_dir', None,
      'Where manually downloaded dataset archives are (ImageNet); default: '
      '<data_dir>/downloads/manual.')
  flags.DEFINE_string('tpu', None, 'TPU name/address for --strategy=tpu.')
  flags.DEFINE_integer(
      'cpu_replicas', 1,
      'Split the CPU into this many logical devices, so that '
      '--strategy=mirrored runs that many replicas on a machine without '
      'GPUs (to try multi-replica training anywhere).')


# The flags `define_flags` defines, in the order --help lists them.
_SCRIPT_FLAGS = ('gin_config', 'gin_bindings', 'output_dir', 'mode',
                 'strategy', 'cpu_replicas', 'eval_once_ckpt', 'data_dir',
                 'tpu')


def _gin_defaults(fn, skip=()):
  """'name = default' lines of `fn`'s keyword parameters."""
  fn = getattr(fn, '__wrapped__', fn)
  lines = []
  for param in inspect.signature(fn).parameters.values():
    if param.name in skip or param.default is inspect.Parameter.empty:
      continue
    lines.append(f'{param.name} = {param.default!r}')
  return lines


def help_text(script_doc, models=()):
  """What `--help` prints: usage, flags, choices and main gin parameters.

  Args:
    script_doc: the task script's module docstring (usage examples).
    models: names of the task's gin model builders (`@name`).

  Returns:
    The text.
  """
  flag_values = flags.FLAGS
  lines = [(script_doc or '').strip(), '', 'Flags:']
  for name in _SCRIPT_FLAGS:
    flag = flag_values[name]
    lines.append(f'  --{name} (default: {flag.default!r})')
    lines.append(f'      {" ".join(flag.help.split())}')
  bind = ('--gin_config=FILE and/or --gin_bindings="NAME = VALUE"')
  lines += [
      '', f'Choices (bind with {bind}):',
      f'  train_eval.method: {", ".join(updaters.methods())}',
      f'  train_eval.distribution: {", ".join(distributions.DISTRIBUTIONS)}',
      f'  train_eval.dataset: {", ".join(data.DATASETS)} (digits works '
      'offline; the others download, imagenet2012 reads its manual_dir)',
      f'  train_eval.model_fn: {", ".join("@" + m for m in models)}',
      f'  make_optimizer.name: {", ".join(_OPTIMIZERS)}',
      f'  make_optimizer.schedule: {", ".join(_SCHEDULES)}',
      f'  init_masks.weight_scaling: {", ".join(masks.WEIGHT_SCALINGS)} '
      "('unit': sparse-aware initialisation, see README)",
      '', 'Main gin parameters and their defaults:']
  skip = ('output_dir', 'mode', 'strategy_name', 'eval_once_ckpt',
          'data_dir', 'tpu')
  for prefix, fn, fn_skip in (
      ('train_eval', train_eval, skip),
      ('make_optimizer', make_optimizer, ('train_steps',)),
      ('init_masks', masks.init_masks, ('seed',)),
      ('RigL', updaters.DropGrowUpdater.__init__, ('self', 'name'))):
    lines += [f'  {prefix}.{line}' for line in _gin_defaults(fn, fn_skip)]
  lines += ['', 'RigL.* also names SET.*, SNFS.*; configs/ holds one gin '
            'file per method and task.',
            'All absl flags (logging, ...): --helpfull.']
  return '\n'.join(lines)


def flags_parser(script_doc, models=()):
  """An `app.run` flags parser whose --help prints `help_text`, exit 0.

  It also applies --cpu_replicas, which must happen before TensorFlow
  initialises its devices.

  Args:
    script_doc: the script's module docstring.
    models: names of the task's gin model builders.

  Returns:
    A function argv -> remaining argv.
  """

  def parse(argv):
    if any(arg in ('-h', '--help', '--helpshort', '-?') for arg in argv[1:]):
      print(help_text(script_doc, models))
      sys.exit(0)
    remaining = app.parse_flags_with_usage(argv)
    try:
      split_cpu(flags.FLAGS.cpu_replicas)
    except UserError as e:
      sys.exit(f'error: {e}')
    return remaining

  return parse


def split_cpu(num_replicas):
  """Splits the first CPU into `num_replicas` logical devices.

  Args:
    num_replicas: number of logical CPU devices (1: leave it whole).

  Raises:
    UserError: for a value below 1, or when TensorFlow already initialised
      its devices (call it at program start).
  """
  if num_replicas < 1:
    raise UserError(f'--cpu_replicas must be >= 1, got {num_replicas}.')
  if num_replicas == 1:
    return
  cpus = tf.config.list_physical_devices('CPU')
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas)
  except RuntimeError as e:
    raise UserError(f'--cpu_replicas: {e}') from e


# The repository root: configs/ and the task folders live here.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""")


def _find_config(path, including_dir=None):
  """`path` as given, or relative to the including file, or to the repo."""
  candidates = [path]
  if not os.path.isabs(path):
    if including_dir:
      candidates.append(os.path.join(including_dir, path))
    candidates.append(os.path.join(REPO_ROOT, path))
  for candidate in candidates:
    if tf.io.gfile.exists(candidate):
      return candidate
  return None


def _parse_config_file(path, including=()):
  """Parses one gin file, resolving its includes with `_find_config`.

  gin itself resolves `include` against the working directory only (its
  search paths fail on bare file names), so the includes are followed here:
  the statements between two includes go to gin in file order, padded with
  blank lines so that gin's error messages keep the file's line numbers.

  Args:
    path: the config file.
    including: the files that include it (to report include cycles).

  Raises:
    UserError: for an include that cannot be found or an include cycle.
  """
  if path in including:
    raise UserError(f'gin include cycle: {" -> ".join(including + (path,))}')
  directory = os.path.dirname(path)
  with tf.io.gfile.GFile(path) as f:
    lines = f.read().splitlines()
  chunk_start = 0

  def parse_chunk(end):
    text = '\n' * chunk_start + '\n'.join(lines[chunk_start:end])
    if text.strip():
      try:
        gin.parse_config(text)
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f'{e} (in {path})') from e

  for number, line in enumerate(lines):
    match = _INCLUDE.match(line)
    if not match:
      continue
    parse_chunk(number)
    chunk_start = number + 1
    included = _find_config(match.group(1), directory)
    if included is None:
      raise UserError(
          f'gin config {path}, line {number + 1}: included file '
          f'{match.group(1)!r} not found (looked in the working directory, '
          f'{directory or "."} and {REPO_ROOT}).')
    _parse_config_file(included, including + (path,))
  parse_chunk(len(lines))


def parse_gin(config_files: Sequence[str], bindings: Sequence[str]):
  """Parses gin files and bindings; any problem becomes a `UserError`.

  A config file (and each of its includes) is looked up as given, then
  relative to the including file, then to the repository root: configs run
  from any working directory.
  """
  found = []
  for path in config_files:
    resolved = _find_config(path)
    if resolved is None:
      raise UserError(f'gin config file not found: {path}')
    found.append(resolved)
  try:
    for path in found:
      _parse_config_file(path)
    gin.parse_config(list(bindings))
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # gin raises ValueError/KeyError/ParseError with multi-line context.
    message = ' '.join(str(e).split())
    raise UserError(
        f'bad gin configuration: {message} (check the names in '
        '--gin_config/--gin_bindings against configs/ and the README)') from e


# ---------------------------------------------------------------------------
# Optimizer and learning-rate schedule.


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `base`, then constant/cosine/piecewise decay."""

  def __init__(self, base, kind, train_steps, warmup_steps=0, boundaries=(),
               multipliers=(), alpha=0.0):
    super().__init__()
    self.base = float(base)
    self.kind = kind
    self.train_steps = int(train_steps)
    self.warmup_steps = int(warmup_steps)
    self.boundaries = [int(b) for b in boundaries]
    self.multipliers = [float(m) for m in multipliers]
    self.alpha = float(alpha)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    if self.kind == 'cosine':
      span = max(self.train_steps - self.warmup_steps, 1)
      progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
      cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
      lr = self.base * ((1.0 - self.alpha) * cosine + self.alpha)
    elif self.kind == 'piecewise':
      lr = tf.constant(self.base)
      for boundary, multiplier in zip(self.boundaries, self.multipliers):
        lr = tf.where(step >= boundary, self.base * multiplier, lr)
    else:
      lr = tf.constant(self.base)
    if self.warmup_steps > 0:
      lr = lr * tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
    return lr

  def get_config(self):
    return dict(base=self.base, kind=self.kind, train_steps=self.train_steps,
                warmup_steps=self.warmup_steps, boundaries=self.boundaries,
                multipliers=self.multipliers, alpha=self.alpha)


_OPTIMIZERS = {
    'sgd': lambda lr, momentum, nesterov: keras.optimizers.SGD(
        lr, momentum=momentum, nesterov=nesterov),
    'adam': lambda lr, momentum, nesterov: keras.optimizers.Adam(lr),
}
_SCHEDULES = ('constant', 'cosine', 'piecewise')


class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """RigL's ImageNet schedule: linear warm-up, then step decay, in epochs.

  The epoch is the fractional `step * batch_size / num_train_examples`.
  The learning rate is `base_learning_rate * batch_size / 256`, scaled
  linearly from 0 over the warm-up epochs, then multiplied by
  `multipliers[i]` from epoch `decay_epochs[i]` on. `steps_multiplier`
  stretches every epoch boundary (RigL's `training_steps_multiplier`).
  """

  def __init__(self, batch_size, num_train_examples, base_learning_rate,
               warmup_epochs, decay_epochs, multipliers, steps_multiplier=1.0):
    super().__init__()
    self.batch_size = int(batch_size)
    self.num_train_examples = int(num_train_examples)
    self.base_learning_rate = float(base_learning_rate)
    self.warmup_epochs = float(warmup_epochs)
    self.decay_epochs = [float(e) for e in decay_epochs]
    self.multipliers = [float(m) for m in multipliers]
    self.steps_multiplier = float(steps_multiplier)

  def __call__(self, step):
    scaled = self.base_learning_rate * self.batch_size / 256.0
    epoch = (tf.cast(step, tf.float32) * self.batch_size
             / self.num_train_examples / self.steps_multiplier)
    lr = tf.constant(scaled)
    if self.warmup_epochs > 0:
      lr = scaled * tf.minimum(epoch / self.warmup_epochs, 1.0)
    for start, multiplier in zip(self.decay_epochs, self.multipliers):
      lr = tf.where(epoch >= start, scaled * multiplier, lr)
    return lr

  def get_config(self):
    return dict(batch_size=self.batch_size,
                num_train_examples=self.num_train_examples,
                base_learning_rate=self.base_learning_rate,
                warmup_epochs=self.warmup_epochs,
                decay_epochs=self.decay_epochs, multipliers=self.multipliers,
                steps_multiplier=self.steps_multiplier)


@gin.configurable
def epoch_schedule(batch_size,
                   steps_multiplier=1.0,
                   num_train_examples=1_281_167,
                   base_learning_rate=0.1,
                   warmup_epochs=5,
                   decay_epochs=(30, 70, 90),
                   multipliers=(0.1, 0.01, 0.001)):
  """An `EpochSchedule`; defaults: RigL's ResNet-50 ImageNet recipe.

  Bind as `make_optimizer.schedule_fn = @epoch_schedule`.

  Args:
    batch_size: global batch size (the trainer passes it).
    steps_multiplier: the run's training_steps_multiplier (passed).
    num_train_examples: examples per epoch (ImageNet: 1,281,167).
    base_learning_rate: learning rate per 256 images.
    warmup_epochs: linear warm-up from 0.
    decay_epochs: epochs where the multiplier changes.
    multipliers: multipliers of the scaled rate from each of those epochs.

  Returns:
    The schedule.
  """
  if len(decay_epochs) != len(multipliers):
    raise UserError('epoch_schedule.decay_epochs and multipliers must have '
                    'the same length.')
  return EpochSchedule(batch_size, num_train_examples, base_learning_rate,
                       warmup_epochs, decay_epochs, multipliers,
                       steps_multiplier)


@gin.configurable(denylist=['batch_size', 'steps_multiplier'])
def make_optimizer(train_steps,
                   batch_size=None,
                   steps_multiplier=1.0,
                   name='sgd',
                   learning_rate=0.1,
                   momentum=0.9,
                   nesterov=False,
                   schedule='constant',
                   warmup_steps=0,
                   boundaries=(),
                   multipliers=(),
                   end_learning_rate_factor=0.0,
                   schedule_fn=None):
  """The wrapped (inner) optimizer and its learning-rate schedule.

  Args:
    train_steps: total training steps (for the cosine decay), already
      multiplied by `steps_multiplier`.
    batch_size: the global batch size (for `schedule_fn`).
    steps_multiplier: training_steps_multiplier; stretches `warmup_steps`
      and `boundaries` as it stretched `train_steps`.
    name: 'sgd' or 'adam'.
    learning_rate: base learning rate.
    momentum: SGD momentum.
    nesterov: SGD Nesterov momentum.
    schedule: 'constant', 'cosine' or 'piecewise'.
    warmup_steps: linear warm-up steps.
    boundaries: piecewise: steps where the multiplier changes.
    multipliers: piecewise: learning-rate multipliers from each boundary on.
    end_learning_rate_factor: cosine: final lr as a fraction of the base.
    schedule_fn: fn(batch_size=, steps_multiplier=) -> schedule, replacing
      learning_rate/schedule/warmup_steps/boundaries (e.g. `epoch_schedule`).

  Returns:
    (optimizer, schedule) where schedule(step) gives the learning rate.
  """
  if name not in _OPTIMIZERS:
    raise UserError(f'Unknown optimizer {name!r}; choose one of '
                    f'{", ".join(sorted(_OPTIMIZERS))}.')
  if schedule not in _SCHEDULES:
    raise UserError(f'Unknown learning-rate schedule {schedule!r}; choose '
                    f'one of {", ".join(_SCHEDULES)}.')
  if len(boundaries) != len(multipliers):
    raise UserError('make_optimizer.boundaries and multipliers must have the '
                    'same length.')
  if schedule_fn is not None:
    lr = schedule_fn(batch_size=batch_size, steps_multiplier=steps_multiplier)
  else:
    lr = WarmupSchedule(
        learning_rate, schedule, train_steps,
        round(warmup_steps * steps_multiplier),
        [round(b * steps_multiplier) for b in boundaries], multipliers,
        end_learning_rate_factor)
  return _OPTIMIZERS[name](lr, momentum, nesterov), lr


# ---------------------------------------------------------------------------
# The run.


def _check_config(config):
  """Checks the settings before anything is built or written."""
  if config.mode not in MODES:
    raise UserError(f'Unknown --mode={config.mode!r}; choose one of '
                    f'{", ".join(MODES)}.')
  if config.strategy_name not in strategies.STRATEGIES:
    raise UserError(f'Unknown --strategy={config.strategy_name!r}; choose '
                    f'one of {", ".join(strategies.STRATEGIES)}.')
  try:
    updaters.get_updater_class(config.method)
    distributions.check_sparsity(config.sparsity, 'train_eval.sparsity')
  except ValueError as e:
    raise UserError(str(e)) from e
  if config.distribution not in distributions.DISTRIBUTIONS:
    raise UserError(
        f'Unknown sparsity distribution {config.distribution!r}; choose one '
        f'of {", ".join(distributions.DISTRIBUTIONS)}.')
  if config.train_steps <= 0 or config.batch_size <= 0:
    raise UserError('train_steps and batch_size must be positive.')
  if config.training_steps_multiplier <= 0:
    raise UserError('train_eval.training_steps_multiplier must be positive, '
                    f'got {config.training_steps_multiplier}.')
  for name in ('log_every', 'checkpoint_every', 'eval_every',
               'keep_checkpoints'):
    value = getattr(config, name)
    if value < (0 if name == 'eval_every' else 1):
      raise UserError(f'train_eval.{name} must be positive, got {value}.')
  if config.mixed_precision not in (None, *MIXED_PRECISION):
    raise UserError(
        f'Unknown train_eval.mixed_precision {config.mixed_precision!r}; '
        f'choose None or one of {", ".join(MIXED_PRECISION)}.')
  if config.jit_compile and config.strategy_name in ('mirrored',
                                                     'multi_worker'):
    raise UserError(
        'train_eval.jit_compile needs --strategy=default or tpu: the '
        'cross-replica step of mirrored strategies cannot run inside XLA.')
  if config.mode == 'eval_once' and config.eval_once_ckpt:
    return  # Needs no output directory.
  if not config.output_dir:
    raise UserError('--output_dir is required.')
  if config.model_fn is None:
    raise UserError('no model: bind train_eval.model_fn (e.g. '
                    '"train_eval.model_fn = @lenet_300_100") in a gin config.')


def _checkpoint_is_readable(path):
  """Whether every tensor of checkpoint `path` can be read (not truncated)."""
  try:
    dtypes = tf.train.load_checkpoint(path).get_variable_to_dtype_map()
    # One restore op reads every tensor, the input pipeline's (variant)
    # state included, which the reader's get_tensor cannot convert.
    names = sorted(dtypes)
    tf.raw_ops.RestoreV2(prefix=path, tensor_names=names,
                         shape_and_slices=[''] * len(names),
                         dtypes=[dtypes[n] for n in names])
  except (tf.errors.OpError, ValueError):
    return False
  return True


def _latest_complete_checkpoint(output_dir):
  """The newest readable checkpoint of `output_dir`, or None.

  A run killed while writing (or a full disk) can leave the latest
  checkpoint truncated: resume from the previous complete one, with a
  warning, rather than fail.
  """
  state = tf.train.get_checkpoint_state(output_dir)
  if state is None:
    return None
  candidates = list(state.all_model_checkpoint_paths)
  if state.model_checkpoint_path not in candidates:
    candidates.append(state.model_checkpoint_path)
  for path in reversed(candidates):
    if not os.path.isabs(path):
      path = os.path.join(output_dir, path)
    if _checkpoint_is_readable(path):
      return path
    print(f'warning: checkpoint {path} is unreadable (truncated or '
          'corrupt); trying the previous one.', file=sys.stderr, flush=True)
  if candidates:
    raise UserError(f'no readable checkpoint in {output_dir}: every one is '
                    'truncated or corrupt. Use another --output_dir.')
  return None


def _restore(checkpoint, path):
  """Restores `path` into `checkpoint`; a mismatch is a `UserError`."""
  try:
    status = checkpoint.restore(path)
    status.assert_existing_objects_matched()
  except tf.errors.OpError as e:
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


def _has_input_position(path):
  """Whether checkpoint `path` saved the input pipeline's position."""
  names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  return any(name.startswith('train_iterator/') for name in names)


def _remove_tree(path):
  """Removes a directory, local or remote (gs://); gone already is fine."""
  try:
    tf.io.gfile.rmtree(path)
  except tf.errors.NotFoundError:
    pass


def _build(strategy, info, config):
  """Builds model, masks and optimizer in the strategy's scope."""
  with strategy.scope():
    keras.utils.set_random_seed(config.seed)
    try:
      updater = updaters.get_updater(config.method)
    except ValueError as e:  # A bad hyperparameter bound with gin.
      raise UserError(str(e)) from e
    if config.training_steps_multiplier != 1.0:
      # The mask schedule stretches with the training (RigL's 5x runs).
      updater.stretch_steps(config.training_steps_multiplier)
    # The run's seed keys SET's growth and tie-breaks; the run's length
    # (already multiplied) sets the default end of mask updates (75%,
    # RigL's).
    updater.configure_run(train_steps=config.train_steps, seed=config.seed)
    with _dtype_policy(config.mixed_precision):
      model = config.model_fn(input_shape=info.input_shape,
                              num_classes=info.num_classes)
    if updater.sparse:
      # The mask wrappers are built under float32: built under a mixed
      # policy they would make their masks 16-bit (they take the dtype of
      # the autocast kernel).
      model = masked_layers.sparsify(model)
      if not model.built:
        model.build((None,) + tuple(info.input_shape))
    planned = {}
    if updater.sparse:
      try:
        plan = masks.sparsity_plan(
            model, config.sparsity, config.distribution,
            erk_power_scale=config.erk_power_scale,
            dense_layers=config.dense_layers,
            first_layer_dense=config.first_layer_dense,
            custom_sparsity_map=config.custom_sparsity_map)
        planned = dict(plan.final)
        # The method draws its initial masks (dense for GMP and SNIP).
        updater.init_masks(model, plan, seed=config.seed,
                           method=config.mask_init,
                           train_steps=config.train_steps)
      except ValueError as e:
        raise UserError(str(e)) from e
    # The model the training steps call: `model` itself, or a method's own
    # wrappers around its layers (tfmot_gmp: TFMOT's), sharing its variables.
    train_model = updater.wrap_model(model)
    inner, lr_schedule = make_optimizer(
        config.train_steps, batch_size=config.batch_size,
        steps_multiplier=config.training_steps_multiplier)
    optimizer = (optimizers_lib.SparseOptimizer(inner, model, updater)
                 if updater.sparse else inner)
    if config.mixed_precision == 'float16':
      # float16 gradients underflow without loss scaling; bfloat16's range
      # is float32's and needs none.
      optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
  return model, train_model, optimizer, updater, lr_schedule, planned


@contextlib.contextmanager
def _dtype_policy(mixed_precision):
  """Builds the model's layers under the mixed-precision policy.

  Layers take the global policy when they are created: it is set for the
  build only, so that it does not leak into later runs in the process.
  Variables (kernels, masks) stay float32; only the computation is cast.
  """
  previous = keras.mixed_precision.global_policy()
  if mixed_precision:
    keras.mixed_precision.set_global_policy(MIXED_PRECISION[mixed_precision])
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def _make_train_loop(strategy, model, optimizer, num_classes, global_batch,
                     label_smoothing, metrics, jit_compile):
  """A tf.function running `num_steps` distributed training steps."""
  loss_obj = keras.losses.CategoricalCrossentropy(
      from_logits=True, label_smoothing=label_smoothing,
      reduction=keras.losses.Reduction.NONE)

  loss_scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

  def replica_step(images, labels):
    with tf.GradientTape() as tape:
      # Mixed precision computes in 16 bits; the loss is float32.
      logits = tf.cast(model(images, training=True), tf.float32)
      per_example = loss_obj(tf.one_hot(labels, num_classes), logits)
      loss = tf.nn.compute_average_loss(per_example,
                                        global_batch_size=global_batch)
      if model.losses:
        loss += tf.nn.scale_regularization_loss(
            tf.add_n([tf.cast(x, tf.float32) for x in model.losses]))
      if loss_scaling:
        scaled_loss = optimizer.get_scaled_loss(loss)
    grads = tape.gradient(scaled_loss if loss_scaling else loss,
                          model.trainable_variables)
    if loss_scaling:
      grads = optimizer.get_unscaled_gradients(grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    metrics['loss'].update_state(per_example)
    metrics['accuracy'].update_state(labels, logits)

  num_replicas = strategy.num_replicas_in_sync
  per_replica = global_batch // num_replicas

  def split(batch):
    # Replica r takes rows [r * per_replica, (r + 1) * per_replica) of the
    # global batch: the same global batches whatever the number of replicas.
    def take(context):
      start = context.replica_id_in_sync_group * per_replica
      return tf.nest.map_structure(lambda t: t[start:start + per_replica],
                                   batch)

    return strategy.experimental_distribute_values_from_function(take)

  def compiled_loop():
    # Each loop has its own (jit-compiled) step: their traces differ.
    step_fn = (tf.function(replica_step, jit_compile=True) if jit_compile
               else replica_step)

    @tf.function
    def loop(iterator, num_steps):
      for _ in tf.range(num_steps):
        batch = next(iterator)
        # One replica takes the whole batch: no slicing ops in its step.
        if num_replicas > 1 and not _uses_distributed_dataset(strategy):
          batch = split(batch)
        strategy.run(step_fn, args=batch)

    return loop

  with_updates = compiled_loop()
  without_updates = compiled_loop()
  sparse = optimizers_lib.find_sparse_optimizer(optimizer)

  def train_loop(iterator, num_steps):
    num_steps = int(num_steps)
    if sparse is None:
      with_updates(iterator, tf.constant(num_steps))
      return
    step = int(sparse.iterations.numpy())
    for count, may_update in update_segments(sparse.updater, step, num_steps):
      if may_update:
        with_updates(iterator, tf.constant(count))
      else:
        with optimizers_lib.mask_updates_off(optimizer):
          without_updates(iterator, tf.constant(count))

  train_loop.with_updates = with_updates
  train_loop.without_updates = without_updates
  return train_loop


def update_segments(updater, step, num_steps):
  """Splits steps [step, step + num_steps) around the mask updates.

  Steps that are known, in Python, to take no mask update run in a loop
  traced without the update's condition (`optimizers.mask_updates_off`):
  they cost what a static-mask step costs.

  Args:
    updater: the `MaskUpdater`.
    step: the first step (the optimizer's iterations).
    num_steps: how many steps.

  Returns:
    A list of (count, may_update): consecutive runs of steps, in order.
    may_update is False for a run with no update step, True for one update
    step, or for all the steps when the updater's schedule is not a Python
    function of the step (its `is_update_step` gives a tensor).
  """
  segments = []
  for s in range(step, step + num_steps):
    flag = updater.is_update_step(s)
    if not isinstance(flag, bool):
      return [(num_steps, True)] if num_steps else []
    if flag or not segments or segments[-1][1]:
      segments.append([1, flag])
    else:
      segments[-1][0] += 1
  return [tuple(x) for x in segments]


def _uses_distributed_dataset(strategy):
  """TPUs need `experimental_distribute_dataset`; others split on the host.

  A host iterator over global batches is checkpointable (exact resume), and
  `MirroredStrategy`'s distributed iterators are not.
  """
  return isinstance(strategy, tf.distribute.TPUStrategy)


def _make_evaluate(strategy, model, dataset, num_classes):
  """A function returning the evaluation metrics of `model` on `dataset`.

  The metrics: 'accuracy' (top-1), 'top5_accuracy' (where there are more
  than 5 classes) and 'eval_examples'.
  """
  with strategy.scope():
    metrics = {'accuracy': keras.metrics.SparseCategoricalAccuracy()}
    if num_classes > 5:
      metrics['top5_accuracy'] = keras.metrics.SparseTopKCategoricalAccuracy(
          k=5)

  @tf.function
  def eval_step(images, labels):

    def fn(images, labels):
      logits = tf.cast(model(images, training=False), tf.float32)
      for metric in metrics.values():
        metric.update_state(labels, logits)

    strategy.run(fn, args=(images, labels))

  def evaluate():
    for metric in metrics.values():
      metric.reset_state()
    for images, labels in strategy.experimental_distribute_dataset(dataset):
      eval_step(images, labels)
    result = {name: float(m.result()) for name, m in metrics.items()}
    result['eval_examples'] = int(metrics['accuracy'].count.numpy())
    return result

  return evaluate


def format_eval(result):
  """'test accuracy: a% (top-5 b%) (n examples)' of an evaluation."""
  text = f'test accuracy: {result["accuracy"]:.4%}'
  if 'top5_accuracy' in result:
    text += f' (top-5 {result["top5_accuracy"]:.4%})'
  return text + f' ({result["eval_examples"]} examples)'


def _format_duration(seconds):
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def sparsity_report(model, planned=None):
  """Per-layer and overall sparsity of a masked model.

  Returns:
    dict with 'layers': [{name, weights, nonzero, sparsity, planned}],
    and 'overall': {weights, nonzero, sparsity}.
  """
  rows = []
  total = nonzero = 0
  for mw in masked_layers.get_masked_weights(model):
    ones = int(tf.math.count_nonzero(mw.mask))
    rows.append({
        'name': mw.name,
        'weights': mw.size,
        'nonzero': ones,
        'sparsity': 1.0 - ones / mw.size,
        'planned': (planned or {}).get(mw.name),
    })
    total += mw.size
    nonzero += ones
  overall = {
      'weights': total,
      'nonzero': nonzero,
      'sparsity': 1.0 - nonzero / total if total else 0.0,
  }
  return {'layers': rows, 'overall': overall}


def flops_report(model, updater, train_steps):
  """MicroNet FLOPs and size of the model's actual masks (rigl_tf.flops).

  Returns:
    (report dict with the keys of `python -m rigl_tf.flops --json`, the
    per-layer Markdown table), or ({'error': ...}, '') when the model cannot
    be counted (e.g. no static input shape).
  """
  try:
    costs = flops.layer_costs(model)
    options = updater.training_cost_options(train_steps, costs)
    report = flops.report_dict(costs, method=updater.method_name,
                               include_layers=True, **options)
  except ValueError as e:
    return {'error': str(e)}, ''
  return report, flops.flops_table_text(costs)


def format_flops_report(report):
  """One paragraph with the FLOP and size totals."""
  if 'error' in report:
    return f'FLOPs: not counted ({report["error"]})'
  return (
      f'Inference FLOPs (MicroNet): {report["inference_flops"]:.4g} = '
      f'{report["inference_flops_ratio"]:.4f}x dense '
      f'({report["dense_inference_flops"]:.4g})\n'
      f'Training FLOPs ({report["method"]}): '
      f'{report["training_flops_ratio"]:.4f}x dense training\n'
      f'Size: {report["size_mb"]:.4f} MB (dense {report["dense_size_mb"]:.4f}'
      f' MB); sparsity of counted layers {report["sparsity"]:.2%}')


def format_sparsity_report(report):
  """The sparsity report as an aligned text table."""
  if not report['layers']:
    return 'Sparsity: dense model (no masked layers).'
  width = max(12, max(len(r['name']) for r in report['layers']) + 2)
  lines = [f'{"layer":<{width}}{"weights":>12}{"nonzero":>12}'
           f'{"sparsity":>10}']
  for row in report['layers'] + [dict(name='overall', **report['overall'])]:
    lines.append(f'{row["name"]:<{width}}{row["weights"]:>12,}'
                 f'{row["nonzero"]:>12,}{row["sparsity"]:>10.2%}')
  return '\n'.join(lines)


def _resolve_checkpoint(eval_once_ckpt, output_dir):
  """The checkpoint prefix for eval_once, or a `UserError`."""
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


def output_locations(output_dir, latest_checkpoint):
  """Lines saying where a finished run's outputs are."""
  return '\n'.join([
      f'Outputs in {output_dir}:',
      f'  report:      {os.path.join(output_dir, "report.json")}',
      f'  TensorBoard: tensorboard --logdir={output_dir}  (train/, eval/)',
      f'  checkpoint:  {latest_checkpoint}  (--mode=eval_once reads it)',
      f'  gin config:  {os.path.join(output_dir, "operative_config.gin")}',
  ])


def _write_json(path, obj):
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _print(*args):
  print(*args, flush=True)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The settings of one run: the arguments of `train_eval` (see there)."""
  output_dir: Optional[str]
  mode: str
  strategy_name: str
  eval_once_ckpt: Optional[str]
  data_dir: Optional[str]
  manual_dir: Optional[str]
  tpu: Optional[str]
  model_fn: Optional[Callable]
  dataset: str
  input_shape: Optional[Sequence[int]]
  train_steps: int
  batch_size: int
  eval_batch_size: int
  method: str
  sparsity: float
  distribution: str
  erk_power_scale: float
  dense_layers: Sequence[str]
  first_layer_dense: bool
  custom_sparsity_map: Optional[dict]
  mask_init: str
  label_smoothing: float
  seed: int
  log_every: int
  checkpoint_every: int
  eval_every: int
  keep_checkpoints: int
  jit_compile: bool
  mixed_precision: Optional[str]
  training_steps_multiplier: float
  eval_timeout: float
  preprocess_fn: Optional[Callable]
  eval_preprocess_fn: Optional[Callable]
  quiet: bool


@dataclasses.dataclass
class _Run:
  """Everything set up for a run, before any checkpoint is restored."""
  config: RunConfig
  strategy: tf.distribute.Strategy
  info: data.DatasetInfo
  model: keras.Model
  # What the training steps call (`updater.wrap_model(model)`).
  train_model: keras.Model
  optimizer: keras.optimizers.Optimizer
  updater: updaters.MaskUpdater
  lr_schedule: Callable
  planned_sparsities: dict
  evaluate: Callable  # () -> (accuracy, number of examples)
  say: Callable  # Progress lines; silent when quiet.


@dataclasses.dataclass
class _Output:
  """Where a training run writes: chief writes, other workers scratch."""
  chief: bool
  created_output_dir: bool
  ckpt_dir: str
  writer: tf.summary.SummaryWriter
  eval_writer: tf.summary.SummaryWriter


@gin.configurable(denylist=['output_dir', 'mode', 'strategy_name',
                            'eval_once_ckpt', 'data_dir', 'manual_dir',
                            'tpu'])
def train_eval(output_dir: Optional[str],
               mode: str = 'train_and_eval',
               strategy_name: str = 'default',
               eval_once_ckpt: Optional[str] = None,
               data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None,
               tpu: Optional[str] = None,
               model_fn: Optional[Callable] = None,
               dataset: str = 'digits',
               input_shape: Optional[Sequence[int]] = None,
               train_steps: int = 1000,
               batch_size: int = 32,
               eval_batch_size: int = 500,
               method: str = 'static',
               sparsity: float = 0.0,
               distribution: str = 'erk',
               erk_power_scale: float = 1.0,
               dense_layers: Sequence[str] = (),
               first_layer_dense: bool = False,
               custom_sparsity_map: Optional[dict] = None,
               mask_init: str = 'random',
               label_smoothing: float = 0.0,
               seed: int = 0,
               log_every: int = 100,
               checkpoint_every: int = 1000,
               eval_every: int = 0,
               keep_checkpoints: int = 3,
               jit_compile: bool = False,
               mixed_precision: Optional[str] = None,
               training_steps_multiplier: float = 1.0,
               eval_timeout: float = 3600.0,
               preprocess_fn: Optional[Callable] = None,
               eval_preprocess_fn: Optional[Callable] = None,
               quiet: bool = False):
  """Trains and/or evaluates a (sparse) model; the whole run of a script.

  Args:
    output_dir: where checkpoints, summaries and reports go.
    mode: 'train', 'train_and_eval', 'eval_once' or 'eval' (evaluates
      each new checkpoint in output_dir until the last training step, or
      until `eval_timeout` seconds pass without a new one).
    strategy_name: see `strategies.get_strategy`.
    eval_once_ckpt: checkpoint for eval_once (default: latest in output_dir).
    data_dir: tfds data_dir.
    manual_dir: tfds manual_dir (ImageNet archives).
    tpu: TPU address for strategy 'tpu'.
    model_fn: fn(input_shape=, num_classes=) -> tf_keras model (gin).
    dataset: tfds dataset name.
    input_shape: the model's (height, width, channels) where the dataset's
      images vary in size and the pipeline resizes them (ImageNet).
    train_steps: number of optimizer steps at training_steps_multiplier 1.
    batch_size: global training batch size.
    eval_batch_size: global evaluation batch size.
    method: sparse training method (`updaters.methods()`).
    sparsity: overall sparsity of the masked layers.
    distribution: 'uniform', 'er' or 'erk'.
    erk_power_scale: ERK exponent.
    dense_layers: layer names kept dense.
    first_layer_dense: keep the first masked layer dense.
    custom_sparsity_map: layer name -> sparsity, outside the budget.
    mask_init: 'random' or 'magnitude'.
    label_smoothing: label smoothing of the cross-entropy.
    seed: seed of weights, masks and data order.
    log_every: steps between progress lines and summaries.
    checkpoint_every: steps between checkpoints.
    eval_every: steps between evaluations (0: only at the end).
    keep_checkpoints: checkpoints kept.
    jit_compile: XLA-compile the replica step ('default'/'tpu' strategies).
    mixed_precision: None (float32), 'bfloat16' (TPU) or 'float16' (GPU,
      with dynamic loss scaling). Variables and masks stay float32.
    training_steps_multiplier: scales train_steps, the learning-rate
      schedule and the mask-update range together (RigL's 1x/2x/5x runs).
    eval_timeout: mode 'eval': seconds to wait for a new checkpoint.
    preprocess_fn: training (image, label) map; default scales to [0, 1].
    eval_preprocess_fn: evaluation map; default `preprocess_fn`'s default.
    quiet: print only the final report.

  Returns:
    The report dict (also written to output_dir/report.json by training).

  Raises:
    UserError: on bad input, a missing checkpoint or dataset, a NaN loss.
  """
  # At this point locals() holds exactly the arguments.
  config = RunConfig(**locals())
  _check_config(config)
  config = dataclasses.replace(config, train_steps=max(
      1, round(train_steps * training_steps_multiplier)))
  # A method with its own run (Gem-Miner: its search, then fine-tuning).
  runner = getattr(updaters.get_updater_class(method), 'runner', None)
  if runner is not None:
    try:
      return runner(config, *_strategy_and_info(config))
    except ValueError as e:
      raise UserError(str(e)) from e
  if mode == 'eval_once':
    ckpt_path = _resolve_checkpoint(eval_once_ckpt, output_dir)
  run = _set_up(config)
  if mode == 'eval_once':
    return _eval_once(run, ckpt_path)
  if mode == 'eval':
    return _continuous_eval(run)
  return _train(run)


# ---------------------------------------------------------------------------
# Set-up: strategy, dataset, model, masks, optimizer, evaluation.


def _make_strategy(strategy_name, tpu):
  """The tf.distribute strategy; a bad choice is a `UserError`."""
  try:
    # First: multi-worker collectives must be set up before any op runs.
    # Device start-up prints native CUDA/oneDNN notices: keep them quiet,
    # but not where start-up can fail natively (peers, TPUs).
    if strategies.silences_start_up(strategy_name):
      with quiet_lib.native_stderr_silenced():
        strategy = strategies.get_strategy(strategy_name, tpu)
        tf.config.list_logical_devices()
    else:
      strategy = strategies.get_strategy(strategy_name, tpu)
  except ValueError as e:
    raise UserError(str(e)) from e
  return strategy


def _strategy_and_info(config):
  """The strategy and the dataset's `DatasetInfo`; bad input: `UserError`."""
  strategy = _make_strategy(config.strategy_name, config.tpu)
  if config.batch_size % strategy.num_replicas_in_sync:
    raise UserError(
        f'train_eval.batch_size={config.batch_size} is the global batch and '
        f'must be divisible by the {strategy.num_replicas_in_sync} replicas.')
  try:
    info = data.get_info(config.dataset, config.data_dir, config.manual_dir)
  except data.DatasetUnavailableError as e:
    raise UserError(str(e)) from e
  if config.input_shape:
    info = dataclasses.replace(info, input_shape=tuple(config.input_shape))
  if None in info.input_shape:
    raise UserError(
        f'{config.dataset} images vary in size: bind train_eval.input_shape '
        '(e.g. (224, 224, 3)) to the size its preprocess_fn produces.')
  return strategy, info


def _set_up(config):
  """Builds everything a run needs; nothing is written yet."""
  strategy, info = _strategy_and_info(config)
  model, train_model, optimizer, updater, lr_schedule, planned = _build(
      strategy, info, config)
  eval_ds = data.get_dataset(
      config.dataset, 'eval', config.eval_batch_size, training=False,
      data_dir=config.data_dir, preprocess_fn=config.eval_preprocess_fn,
      manual_dir=config.manual_dir)
  return _Run(
      config=config, strategy=strategy, info=info, model=model,
      train_model=train_model, optimizer=optimizer, updater=updater,
      lr_schedule=lr_schedule, planned_sparsities=planned,
      evaluate=_make_evaluate(strategy, model, eval_ds, info.num_classes),
      say=(lambda *a: None) if config.quiet else _print)


# ---------------------------------------------------------------------------
# Evaluation of a checkpoint.


def _eval_once(run, ckpt_path):
  """Restores `ckpt_path`, evaluates it, checks the invariant, reports."""
  model = run.model
  _restore(tf.train.Checkpoint(model=model), ckpt_path).expect_partial()
  result = run.evaluate()
  flops_numbers, _ = flops_report(model, run.updater, run.config.train_steps)
  report = {'checkpoint': ckpt_path, **result,
            'masks': sparsity_report(model, run.planned_sparsities),
            **flops_numbers}
  bad = masked_layers.check_invariant(model)
  _print(f'eval_once {ckpt_path}: {format_eval(result)}')
  _print(format_sparsity_report(report['masks']))
  _print(format_flops_report(flops_numbers))
  if bad:
    raise UserError(f'checkpoint violates the mask invariant (non-zero '
                    f'masked weights) in layers {bad}.')
  _print('invariant: every masked weight is exactly zero.')
  return report


def _checkpoint_step(path):
  """The step of a CheckpointManager prefix .../ckpt-<step>."""
  return int(path.rsplit('-', 1)[1])


def _continuous_eval(run):
  """Evaluates every new checkpoint in output_dir as training writes them.

  Ends after evaluating the checkpoint of the last training step, or when
  no new checkpoint appears for `eval_timeout` seconds. Accuracies go to
  TensorBoard (output_dir/eval) at each checkpoint's step; the last
  evaluation is written to output_dir/eval_report.json.

  Returns:
    The report of the last evaluated checkpoint ({} if there was none).
  """
  config = run.config
  writer = tf.summary.create_file_writer(
      os.path.join(config.output_dir, 'eval'))
  checkpoint = tf.train.Checkpoint(model=run.model)
  report = {}
  for path in tf.train.checkpoints_iterator(
      config.output_dir, min_interval_secs=1, timeout=config.eval_timeout):
    try:
      _restore(checkpoint, path).expect_partial()
    except (tf.errors.NotFoundError, UserError) as e:
      # Training's CheckpointManager may have deleted it meanwhile.
      logging.warning('Skipping checkpoint %s: %s', path, e)
      continue
    step = _checkpoint_step(path)
    result = run.evaluate()
    bad = masked_layers.check_invariant(run.model)
    if bad:
      raise UserError(f'checkpoint {path} violates the mask invariant in '
                      f'layers {bad}.')
    _print(f'step {step}: {format_eval(result)}')
    _write_eval_summaries(writer, step, result)
    writer.flush()
    report = {'checkpoint': path, 'step': step, **result,
              'masks': sparsity_report(run.model, run.planned_sparsities)}
    _write_json(os.path.join(config.output_dir, 'eval_report.json'), report)
    if step >= config.train_steps:
      break
  else:
    _print(f'No new checkpoint in {config.output_dir} for '
           f'{config.eval_timeout:g} s: evaluation stops.')
  return report


# ---------------------------------------------------------------------------
# Training: output directory, restore, the loop, checkpoints, the report.


def _train(run):
  """Trains from the latest checkpoint (if any) to the end; the report."""
  output = _prepare_output(run)
  with run.strategy.scope():
    metrics = {'loss': keras.metrics.Mean(),
               'accuracy': keras.metrics.SparseCategoricalAccuracy()}
  checkpointer, train_iterator = _restore_or_start(run, output)
  config = run.config
  train_loop = _make_train_loop(
      run.strategy, run.train_model, run.optimizer, run.info.num_classes,
      config.batch_size, config.label_smoothing, metrics,
      config.jit_compile)
  if output.chief:
    _write_operative_config(config.output_dir)
  run.say(f'Training {run.model.name} on {config.dataset} '
          f'({run.info.num_train_examples or "?"} examples): '
          f'method={config.method} sparsity={config.sparsity} '
          f'distribution={config.distribution} steps={config.train_steps} '
          f'batch={config.batch_size} '
          f'replicas={run.strategy.num_replicas_in_sync}')
  step, last_loss = _train_to_end(run, output, checkpointer, train_loop,
                                  train_iterator, metrics)
  report = _final_report(run, output, step, last_loss)
  _finish_output(run, output, report)
  return report


def _prepare_output(run):
  """Creates the output directory and the summary writers."""
  output_dir = run.config.output_dir
  chief = strategies.is_chief(run.strategy)
  created_output_dir = not tf.io.gfile.exists(output_dir)
  tf.io.gfile.makedirs(output_dir)
  ckpt_dir = output_dir
  if not chief:  # Non-chief workers save (collectively) to a scratch dir.
    ckpt_dir = os.path.join(output_dir, '.worker_tmp',
                            str(run.strategy.cluster_resolver.task_id))

  def writer(name):
    if not chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(output_dir, name))

  return _Output(chief=chief, created_output_dir=created_output_dir,
                 ckpt_dir=ckpt_dir, writer=writer('train'),
                 eval_writer=writer('eval'))


def _write_operative_config(output_dir):
  with tf.io.gfile.GFile(os.path.join(output_dir, 'operative_config.gin'),
                         'w') as f:
    f.write(gin.operative_config_str())


def _make_train_iterator(run, data_seed):
  """An iterator over global training batches, shuffled by `data_seed`."""
  config = run.config
  train_ds = data.get_dataset(
      config.dataset, 'train', config.batch_size, training=True,
      data_dir=config.data_dir, preprocess_fn=config.preprocess_fn,
      seed=data_seed, manual_dir=config.manual_dir)
  if _uses_distributed_dataset(run.strategy):
    return iter(run.strategy.experimental_distribute_dataset(train_ds))
  return iter(train_ds)


class _Checkpointer:
  """Saves model, optimizer and, where it can, the input position."""

  def __init__(self, run, ckpt_dir, train_iterator):
    self._run = run
    self._ckpt_dir = ckpt_dir
    self.saves_input_position = train_iterator is not None
    self.manager = self._make_manager(train_iterator)

  def _make_manager(self, train_iterator):
    trackables = dict(model=self._run.model, optimizer=self._run.optimizer)
    if train_iterator is not None:
      trackables['train_iterator'] = train_iterator
    return tf.train.CheckpointManager(
        tf.train.Checkpoint(**trackables), self._ckpt_dir,
        max_to_keep=self._run.config.keep_checkpoints,
        step_counter=self._run.optimizer.iterations)

  def save(self, step):
    """Saves checkpoint `step`; drops the input position if it cannot."""
    try:
      self.manager.save(checkpoint_number=step)
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
      self.manager.save(checkpoint_number=step)


def _restore_or_start(run, output):
  """Restores the latest checkpoint, if any; (checkpointer, iterator).

  Small datasets: the input position is saved and a resumed run continues
  the exact data order. Large ones, TPU's distributed iterators and
  pipelines that cannot be serialised (py_function): a resumed run
  reshuffles with a step-dependent seed. Every worker resumes from the
  chief's checkpoint: the scratch copies of the others may lag behind and
  are deleted after a run.
  """
  latest = _latest_complete_checkpoint(run.config.output_dir)
  train_iterator = None
  if (data.checkpoint_input_position(run.info)
      and not _uses_distributed_dataset(run.strategy)
      and (latest is None or _has_input_position(latest))):
    train_iterator = _make_train_iterator(run, run.config.seed)
  checkpointer = _Checkpointer(run, output.ckpt_dir, train_iterator)
  if latest:
    _restore(checkpointer.manager.checkpoint, latest)
    run.say(f'Resumed from {latest} at step '
            f'{int(run.optimizer.iterations.numpy())}.')
  if train_iterator is None:
    step = int(run.optimizer.iterations.numpy())
    train_iterator = _make_train_iterator(
        run, run.config.seed + 1_000_003 * step)
  return checkpointer, train_iterator


class _Throughput:
  """Steps per second since the previous call."""

  def __init__(self, step):
    self._step, self._time = step, time.time()

  def rate(self, step):
    now = time.time()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    return rate


def _steps_to_next_event(step, config):
  """Steps until the next log, checkpoint, evaluation or the end."""
  events = [config.train_steps,
            (step // config.log_every + 1) * config.log_every,
            (step // config.checkpoint_every + 1) * config.checkpoint_every]
  if config.eval_every:
    events.append((step // config.eval_every + 1) * config.eval_every)
  return min(events) - step


def _train_to_end(run, output, checkpointer, train_loop, train_iterator,
                  metrics):
  """Runs the training loop in chunks between events; (step, last loss)."""
  config = run.config
  step = int(run.optimizer.iterations.numpy())
  # Connectivity, density and ITOP pictures in TensorBoard (rigl_tf.pictures).
  pictures = (pictures_lib.TrainingPictures(
      run.model, run.info.input_shape,
      os.path.join(config.output_dir, 'train'), step)
              if output.chief and run.updater.sparse else None)
  throughput = _Throughput(step)
  last_loss = float('nan')
  while step < config.train_steps:
    chunk = _steps_to_next_event(step, config)
    train_loop(train_iterator, tf.constant(chunk))
    step = int(run.optimizer.iterations.numpy())
    last_loss = float(metrics['loss'].result())
    if not math.isfinite(last_loss):
      _stop_diverged(run, output, step, last_loss)
    at_end = step == config.train_steps
    if step % config.log_every == 0 or at_end:
      _log_progress(run, output.writer, step, metrics,
                    throughput.rate(step))
      if pictures is not None:
        with output.writer.as_default(step=step):
          pictures.write(step, run.updater.summaries(), final=at_end)
    if step % config.checkpoint_every == 0 or at_end:
      _save_checkpoint(run, checkpointer, step)
    if (config.mode == 'train_and_eval' and config.eval_every
        and step % config.eval_every == 0):
      result = run.evaluate()
      run.say(f'step {step}: {format_eval(result)}')
      _write_eval_summaries(output.eval_writer, step, result)
  return step, last_loss


def _stop_diverged(run, output, step, loss):
  """Raises the `UserError` of a non-finite loss; cleans a fresh output."""
  output_dir = run.config.output_dir
  latest = tf.train.latest_checkpoint(output_dir)
  if latest is None and output.created_output_dir and output.chief:
    # Nothing good was produced: leave no output behind.
    _remove_tree(output_dir)
  raise UserError(
      f'loss is {loss} at step {step}: training diverged. Lower the '
      'learning rate (make_optimizer.learning_rate) or check the data; '
      + (f'the last good checkpoint is {latest}.' if latest else
         'no checkpoint was written.'))


def _log_progress(run, writer, step, metrics, rate):
  """Prints a progress line, writes the train summaries, resets metrics."""
  train_steps = run.config.train_steps
  loss = float(metrics['loss'].result())
  accuracy = float(metrics['accuracy'].result())
  lr = float(run.lr_schedule(step))
  eta = (train_steps - step) / max(rate, 1e-9)
  run.say(f'step {step}/{train_steps}  loss {loss:.4f}  '
          f'acc {accuracy:.4f}  lr {lr:.4g}  {rate:.1f} steps/s  '
          f'ETA {_format_duration(eta)}')
  with writer.as_default(step=step):
    write_train_summaries(run, dict(loss=loss, accuracy=accuracy,
                                    learning_rate=lr))
  for metric in metrics.values():
    metric.reset_state()


def write_train_summaries(run, scalars):
  """Writes the training summaries of one logging step (default writer).

  Args:
    run: the run (its model and updater supply the sparsity summaries).
    scalars: name -> value of the loop's own scalars (loss, accuracy, lr).
  """
  for name, value in scalars.items():
    tf.summary.scalar(name, value)
  if run.updater.sparse:
    # Per-layer density, ITOP rate, drop fraction, ... (the updater's).
    for name, value in run.updater.summaries().items():
      tf.summary.scalar(name, value)
    tf.summary.scalar(
        'density/overall',
        1 - sparsity_report(run.model)['overall']['sparsity'])


def _write_eval_summaries(writer, step, result):
  with writer.as_default(step=step):
    for name, value in result.items():
      if name != 'eval_examples':
        tf.summary.scalar(name, value)


def _save_checkpoint(run, checkpointer, step):
  """Checks the mask invariant, then saves checkpoint `step`."""
  bad = (masked_layers.check_invariant(run.model) if run.updater.sparse
         else [])
  if bad:  # A library bug, never a user's: do not save such a model.
    raise UserError(f'mask invariant violated at step {step} in {bad}; '
                    'please report this.')
  checkpointer.save(step)


def _final_report(run, output, step, last_loss):
  """The end-of-training report (final evaluation in train_and_eval)."""
  config, model, updater = run.config, run.model, run.updater
  flops_numbers, flops_table = flops_report(model, updater,
                                            config.train_steps)
  report = {'step': step, 'method': config.method, 'dataset': config.dataset,
            'loss': last_loss if math.isfinite(last_loss) else None,
            'masks': sparsity_report(model, run.planned_sparsities),
            **flops_numbers}
  if updater.sparse:
    # In-Time Over-Parameterization: the fraction of the masked weights that
    # were active at some point (equals the density for fixed masks).
    report['itop_rate'] = float(updater.itop_rate())
    differ = _masks_differing_across_replicas(run)
    if differ:  # A library bug: replicas must take identical decisions.
      raise UserError(f'masks differ across replicas in {differ}; please '
                      'report this.')
    report['masks_identical_on_replicas'] = True
  if config.mode == 'train_and_eval':
    result = run.evaluate()
    report.update(result)
    _write_eval_summaries(output.eval_writer, step, result)
    _print(f'Final {format_eval(result)} at step {step}')
  _print(format_sparsity_report(report['masks']))
  if 'itop_rate' in report:
    _print(f'ITOP rate: {report["itop_rate"]:.2%} of the masked weights were '
           'active at some point of training')
  _print(format_flops_report(flops_numbers))
  if flops_table:
    _print(flops_table)
    with output.writer.as_default(step=step):
      tf.summary.text('flops_and_density_per_layer', flops_table)
  return report


def _masks_differing_across_replicas(run):
  """Names of the masks whose local replica copies are not all equal."""
  differ = []
  for mw in masked_layers.get_masked_weights(run.model):
    copies = [v.numpy() for v in
              run.strategy.experimental_local_results(mw.mask)]
    if any(not (copy == copies[0]).all() for copy in copies[1:]):
      differ.append(mw.name)
  return differ


def _finish_output(run, output, report):
  """Chief: writes the config and report; others: remove their scratch."""
  for writer in (output.writer, output.eval_writer):
    writer.flush()
  output_dir = run.config.output_dir
  if output.chief:
    _write_operative_config(output_dir)
    _write_json(os.path.join(output_dir, 'report.json'), report)
    run.say(output_locations(output_dir,
                             tf.train.latest_checkpoint(output_dir)))
    return
  _remove_tree(output.ckpt_dir)
  scratch = os.path.dirname(output.ckpt_dir)
  try:  # The last worker out removes the empty scratch parent.
    if not tf.io.gfile.listdir(scratch):
      _remove_tree(scratch)
  except tf.errors.NotFoundError:
    pass


def run(argv):
  """Entry point of a task's train_eval.py (after `define_flags()`)."""
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}; use --flags.')
  flag_values = flags.FLAGS
  # Library INFO logs and tfds progress bars would drown the progress lines.
  if not flag_values['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  tfds.disable_progress_bar()
  try:
    parse_gin(flag_values.gin_config, flag_values.gin_bindings)
    train_eval(
        output_dir=flag_values.output_dir,
        mode=flag_values.mode,
        strategy_name=flag_values.strategy,
        eval_once_ckpt=flag_values.eval_once_ckpt,
        data_dir=flag_values.data_dir,
        manual_dir=flag_values.manual_dir,
        tpu=flag_values.tpu)
  except UserError as e:
    # gin appends "In call to configurable ..." lines; keep the message only.
    message = str(e).split('\n  In call to configurable')[0].strip()
    sys.exit(f'error: {message}')

