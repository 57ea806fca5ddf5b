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
"""A run's configuration: gin files and bindings, and `RunConfig`.

Everything a run needs is bound with gin on `train_eval` (the fields of
`RunConfig`), `make_optimizer` and the methods' classes; the command-line
flags say where and how to run and fill the fields gin may not bind
(`output_dir`, `mode`, `strategy_name`, `eval_once_ckpt`, `data_dir`,
`manual_dir`, `tpu`). Config files are found from any working directory, and
their `include`s relative to the including file (`parse_gin`).
"""

import dataclasses
import math
import os
import re
from typing import Callable, Optional, Sequence

import gin
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import distributions
from rigl_tf import flavours
from rigl_tf import optimizers
from rigl_tf import strategies
from rigl_tf import structure as structure_lib
from rigl_tf.errors import UserError
from rigl_tf.methods import registry

MODES = ('train', 'train_and_eval', 'eval_once', 'eval')
# Mixed-precision choices: compute dtype -> Keras policy.
MIXED_PRECISION = {'bfloat16': 'mixed_bfloat16',
                   'float16': 'mixed_float16'}
# Keras's policy names, accepted for the same choices.
KERAS_POLICIES = {policy: dtype for dtype, policy in MIXED_PRECISION.items()}
# The fields set by command-line flags; gin may not bind them.
FLAG_FIELDS = ('output_dir', 'mode', 'strategy_name', 'eval_once_ckpt',
               'data_dir', 'manual_dir', 'tpu')


# The repository root: configs/ and the task folders live here.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
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


@gin.configurable('train_eval', denylist=list(FLAG_FIELDS))
@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The settings of one run; gin binds them as `train_eval.<field>`.

  Attributes:
    output_dir: where checkpoints, summaries and reports go.
    mode: 'train', 'train_and_eval', 'eval_once' or 'eval' (evaluates
      each new checkpoint in output_dir until the last training step, or
      until `eval_timeout` seconds pass without a new one).
    strategy_name: see `strategies.get_strategy`.
    eval_once_ckpt: checkpoint for eval_once (default: latest in output_dir).
    data_dir: tfds data_dir.
    manual_dir: tfds manual_dir (ImageNet archives).
    tpu: TPU address for strategy 'tpu'.
    model_fn: fn(input_shape=, num_classes=) -> a model of the `keras`
      flavour (gin); the task models build in the flavour being built
      (`rigl_tf.flavours.keras()`).
    keras: the Keras flavour of the model and optimizer: 'tf_keras'
      (Keras 2, the default: TFMOT's tfmot_gmp needs it) or
      'keras3' (Keras 3 on the TensorFlow backend).
    dataset: tfds dataset name.
    input_shape: the model's (height, width, channels) where the dataset's
      images vary in size and the pipeline resizes them (ImageNet).
    train_steps: number of optimizer steps at training_steps_multiplier 1;
      after `resolve`, the run's total (multiplied).
    batch_size: global training batch size.
    eval_batch_size: global evaluation batch size.
    method: sparse training method (`rigl_tf.methods.names()`).
    sparsity: overall sparsity of the masked layers.
    distribution: 'uniform', 'er' or 'erk'.
    erk_power_scale: ERK exponent.
    dense_layers: layer names kept dense.
    first_layer_dense: keep the first masked layer dense.
    custom_sparsity_map: layer name -> sparsity, outside the budget.
    mask_init: 'random' or 'magnitude'.
    structure: 'unstructured'; 'constant_fan_in' (every output unit keeps
      k = n_in - floor(s·n_in) inputs, SRigL); or 'N:M' such as '2:4' (N of
      every M consecutive inputs of a unit; sparsity must be 1 - N/M).
      For static, set, snfs (without redistribution) and rigl.
    on_unfit: a layer whose shape cannot take the structure: 'error' (stop
      at start) or 'unstructured' (keep it unstructured, said in the
      report).
    label_smoothing: label smoothing of the cross-entropy.
    seed: seed of weights, masks and data order.
    log_every: steps between progress lines and summaries.
    checkpoint_every: steps between checkpoints.
    eval_every: steps between evaluations (0: only at the end).
    keep_checkpoints: checkpoints kept.
    jit_compile: XLA-compile the replica step ('default'/'tpu' strategies).
    mixed_precision: None (float32), 'bfloat16' (TPU) or 'float16' (GPU,
      with dynamic loss scaling); Keras's 'mixed_bfloat16' and
      'mixed_float16' name the same. Variables and masks stay float32.
    training_steps_multiplier: scales train_steps, the learning-rate
      schedule and the mask-update range together (RigL's 1x/2x/5x runs).
    eval_timeout: mode 'eval': seconds to wait for a new checkpoint.
    preprocess_fn: training (image, label) map; default scales to [0, 1].
    eval_preprocess_fn: evaluation map; default `preprocess_fn`'s default.
    quiet: print only the final report.
  """
  output_dir: Optional[str] = None
  mode: str = 'train_and_eval'
  strategy_name: str = 'default'
  eval_once_ckpt: Optional[str] = None
  data_dir: Optional[str] = None
  manual_dir: Optional[str] = None
  tpu: Optional[str] = None
  model_fn: Optional[Callable] = None
  keras: str = flavours.TF_KERAS
  dataset: str = 'digits'
  input_shape: Optional[Sequence[int]] = None
  train_steps: int = 1000
  batch_size: int = 32
  eval_batch_size: int = 500
  method: str = 'static'
  sparsity: float = 0.0
  distribution: str = 'erk'
  erk_power_scale: float = 1.0
  dense_layers: Sequence[str] = ()
  first_layer_dense: bool = False
  custom_sparsity_map: Optional[dict] = None
  mask_init: str = 'random'
  structure: str = 'unstructured'
  on_unfit: str = 'error'
  label_smoothing: float = 0.0
  seed: int = 0
  log_every: int = 100
  checkpoint_every: int = 1000
  eval_every: int = 0
  keep_checkpoints: int = 3
  jit_compile: bool = False
  mixed_precision: Optional[str] = None
  training_steps_multiplier: float = 1.0
  eval_timeout: float = 3600.0
  preprocess_fn: Optional[Callable] = None
  eval_preprocess_fn: Optional[Callable] = None
  quiet: bool = False

  def __post_init__(self):
    # Keras's policy names ('mixed_float16') name the same choice.
    dtype = KERAS_POLICIES.get(self.mixed_precision)
    if dtype:
      object.__setattr__(self, 'mixed_precision', dtype)


def defaults():
  """field name -> default value of every `RunConfig` field."""
  return {f.name: f.default for f in dataclasses.fields(RunConfig)}


def resolve(config):
  """Checks `config` and returns it with the run's total `train_steps`.

  Raises:
    UserError: for a bad setting, before anything is built or written.
  """
  _check_choices(config)
  _check_numbers(config)
  _check_combinations(config)
  return dataclasses.replace(config, train_steps=max(
      1, round(config.train_steps * config.training_steps_multiplier)))


def _check_choices(config):
  if config.mode not in MODES:
    raise UserError(f'Unknown --mode={config.mode!r}; choose one of '
                    f'{", ".join(MODES)}.')
  if config.strategy_name not in strategies.STRATEGIES:
    raise UserError(f'Unknown --strategy={config.strategy_name!r}; choose '
                    f'one of {", ".join(strategies.STRATEGIES)}.')
  try:
    registry.get_class(config.method)
    distributions.check_sparsity(config.sparsity, 'train_eval.sparsity')
  except ValueError as e:
    raise UserError(str(e)) from e
  if config.keras not in flavours.NAMES:
    raise UserError(f'Unknown train_eval.keras {config.keras!r}; choose one '
                    f'of {", ".join(repr(n) for n in flavours.NAMES)}.')
  if config.keras == flavours.KERAS3:
    try:
      flavours.check_keras3_backend()
    except ValueError as e:
      raise UserError(str(e)) from e
    refusal = optimizers.keras3_refusal(registry.get_class(config.method))
    if refusal:
      raise UserError(f"train_eval.keras = 'keras3': {refusal}")
  try:
    run_structure = structure_lib.Structure.parse(config.structure)
    checks.check_choice(config.on_unfit, structure_lib.ON_UNFIT,
                        'train_eval.on_unfit')
  except ValueError as e:
    raise UserError(f'train_eval.structure: {e}') from e
  refusal = registry.get_class(config.method).structure_refusal(
      run_structure)
  if refusal:
    raise UserError(f'train_eval.structure = {config.structure!r}: '
                    f'{refusal}')
  if config.distribution not in distributions.DISTRIBUTIONS:
    raise UserError(
        f'Unknown sparsity distribution {config.distribution!r}; choose one '
        f'of {", ".join(distributions.DISTRIBUTIONS)}.')
  if config.mixed_precision not in (None, *MIXED_PRECISION):
    raise UserError(
        f'Unknown train_eval.mixed_precision {config.mixed_precision!r}; '
        f'choose None or one of {", ".join(MIXED_PRECISION)} (Keras\'s '
        f'{", ".join(KERAS_POLICIES)} name the same).')


def _check_numbers(config):
  if config.train_steps <= 0 or config.batch_size <= 0:
    raise UserError('train_steps and batch_size must be positive.')
  if not (config.training_steps_multiplier > 0
          and math.isfinite(config.training_steps_multiplier)):
    raise UserError('train_eval.training_steps_multiplier must be positive, '
                    f'got {config.training_steps_multiplier}.')
  for name in ('log_every', 'checkpoint_every', 'eval_every',
               'keep_checkpoints'):
    value = getattr(config, name)
    if value < (0 if name == 'eval_every' else 1):
      raise UserError(f'train_eval.{name} must be positive, got {value}.')


def _check_combinations(config):
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
