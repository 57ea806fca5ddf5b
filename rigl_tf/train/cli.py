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
"""The command line of every task's train_eval.py: flags, --help, the run.

  --output_dir   checkpoints, TensorBoard summaries (train/, eval/),
                 operative_config.gin, report.json
  --mode         train | train_and_eval | eval_once | eval (continuous:
                 follows the checkpoints a training run writes)
  --strategy     default | mirrored | multi_worker | tpu

A task script defines its models as gin configurables and calls `run(argv)`
under absl (see `rigl_tf.script`). A run resumes from the latest checkpoint
in `--output_dir`. Bad input ends with one line on stderr (`error: ...`) and
exit status 1.
"""

import inspect
import sys

from absl import flags
import tensorflow as tf
import tensorflow_datasets as tfds

from rigl_tf import data
from rigl_tf import distributions
from rigl_tf import errors
from rigl_tf import masks
from rigl_tf import strategies
from rigl_tf.errors import UserError
from rigl_tf.methods import drop_grow
from rigl_tf.methods import registry
from rigl_tf.train import config as config_lib
from rigl_tf.train import learning_rate
from rigl_tf.train import runners


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
  flags.DEFINE_string('mode', 'train_and_eval',
                      f'One of {config_lib.MODES}.')
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
                 'manual_dir', 'tpu')


def _gin_defaults(fn, skip=()):
  """'name = default' lines of `fn`'s keyword parameters (or fields)."""
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
      f'  train_eval.method: {", ".join(registry.names())}',
      f'  train_eval.distribution: {", ".join(distributions.DISTRIBUTIONS)}',
      f'  train_eval.dataset: {", ".join(data.DATASETS)} (digits works '
      'offline; the others download, imagenet2012 reads its manual_dir)',
      f'  train_eval.model_fn: {", ".join("@" + m for m in models)}',
      "  train_eval.keras: 'tf_keras' (the default: tfmot_gmp needs it, as "
      "TFMOT needs Keras 2) or 'keras3' (Keras 3 on TensorFlow; every task "
      'model builds in both; see docs/keras3.md)',
      "  train_eval.structure: 'unstructured', 'constant_fan_in' (every "
      "output unit keeps k = n_in - floor(s*n_in) inputs) or 'N:M' (e.g. "
      "'2:4'; sparsity 1 - N/M); for static, set, snfs and rigl; see "
      'docs/structure.md',
      "  train_eval.on_unfit: 'error' or 'unstructured' (a layer whose shape "
      'cannot take the structure)',
      f'  make_optimizer.name: {", ".join(learning_rate.OPTIMIZERS)}',
      f'  make_optimizer.schedule: {", ".join(learning_rate.SCHEDULES)}',
      f'  init_masks.weight_scaling: {", ".join(masks.WEIGHT_SCALINGS)} '
      "('unit': sparse-aware initialisation, see docs/library.md)",
      '', 'Main gin parameters and their defaults:']
  for prefix, fn, fn_skip in (
      # The fields the flags set are not gin's to bind.
      ('train_eval', config_lib.RunConfig, config_lib.FLAG_FIELDS),
      ('make_optimizer', learning_rate.make_optimizer,
       ('train_steps', 'flavour')),
      ('init_masks', masks.init_masks, ('seed',)),
      ('RigL', drop_grow.DropGrowUpdater.__init__, ('self', 'name'))):
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
    remaining = errors.parse_flags(argv)
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


def _train_eval(flag_values):
  # tfds progress bars would drown the progress lines.
  tfds.disable_progress_bar()
  config_lib.parse_gin(flag_values.gin_config, flag_values.gin_bindings)
  runners.train_eval(
      output_dir=flag_values.output_dir,
      mode=flag_values.mode,
      strategy_name=flag_values.strategy,
      eval_once_ckpt=flag_values.eval_once_ckpt,
      data_dir=flag_values.data_dir,
      manual_dir=flag_values.manual_dir,
      tpu=flag_values.tpu)


# Entry point of a task's train_eval.py (after `define_flags()`).
run = errors.cli_main(_train_eval)
