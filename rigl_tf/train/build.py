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
"""Building a run: strategy, dataset information, model, masks, optimizer.

`set_up(config)` builds everything a run needs, in the strategy's scope,
before any checkpoint is restored or any file is written: the method (gin
fills its hyperparameters), the model (sparsified when the method is
sparse), the initial masks from the configuration's `SparsityPlan`, the
model the training steps call (`wrap_model`), the optimizer stack
(`SparseOptimizer`, inside a `LossScaleOptimizer` for float16) and the
evaluation function.
"""

import contextlib
import dataclasses
from typing import Callable

import tensorflow as tf
import tf_keras as keras

from rigl_tf import data
from rigl_tf import flavours
from rigl_tf import layers as masked_layers
from rigl_tf import masks as masks_lib
from rigl_tf import optimizers as optimizers_lib
from rigl_tf import quiet as quiet_lib
from rigl_tf import strategies
from rigl_tf.errors import UserError
from rigl_tf.methods import base
from rigl_tf.methods import registry
from rigl_tf.train import config as config_lib
from rigl_tf.train import evaluate as evaluate_lib
from rigl_tf.train import learning_rate
from rigl_tf.train import report


@dataclasses.dataclass
class Run:
  """Everything set up for a run, before any checkpoint is restored."""
  config: config_lib.RunConfig
  strategy: tf.distribute.Strategy
  info: data.DatasetInfo
  model: keras.Model
  # What the training steps call (`updater.wrap_model(model)`).
  train_model: keras.Model
  optimizer: keras.optimizers.Optimizer
  updater: base.MaskUpdater
  lr_schedule: Callable
  planned_sparsities: dict
  evaluate: Callable  # () -> dict of metrics (`evaluate.make_evaluate`)
  say: Callable  # Progress lines; silent when quiet.


def make_strategy(strategy_name, tpu):
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


def strategy_and_info(config):
  """The strategy and the dataset's `DatasetInfo`; bad input: `UserError`."""
  strategy = make_strategy(config.strategy_name, config.tpu)
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


def make_updater(config):
  """The run's method, told the run's length and seed; bad values: UserError.

  gin fills its hyperparameters. The mask schedule stretches with the
  training (RigL's 5x runs); the run's seed keys SET's growth and
  tie-breaks; the run's length (already multiplied) sets the default end of
  mask updates (75%, RigL's).
  """
  try:
    updater = registry.create(config.method)
  except ValueError as e:  # A bad hyperparameter bound with gin.
    raise UserError(str(e)) from e
  if config.training_steps_multiplier != 1.0:
    updater.stretch_steps(config.training_steps_multiplier)
  updater.configure_run(train_steps=config.train_steps, seed=config.seed)
  return updater


def build_model(config, info, sparse):
  """The configured model (call in the strategy's scope), sparsified or not.

  Args:
    config: the `RunConfig`.
    info: the dataset's `data.DatasetInfo` (input shape, classes).
    sparse: wrap its maskable layers (`layers.sparsify`); masks start dense.

  Returns:
    The built model.

  Raises:
    UserError: for a model of another flavour than `train_eval.keras`.
  """
  with flavours.building(config.keras), dtype_policy(config.mixed_precision,
                                                      config.keras):
    model = config.model_fn(input_shape=info.input_shape,
                            num_classes=info.num_classes)
  if flavours.of(model) != config.keras:
    raise UserError(
        f'train_eval.model_fn returned a {flavours.of(model) or type(model)} '
        f"model, and train_eval.keras is '{config.keras}': build the model "
        'with rigl_tf.flavours.keras() (the flavour being built), or set '
        'train_eval.keras to its flavour.')
  if sparse:
    # The mask wrappers are built under float32: built under a mixed
    # policy they would make their masks 16-bit (they take the dtype of
    # the autocast kernel).
    model = masked_layers.sparsify(model)
  if not model.built:
    model.build((None,) + tuple(info.input_shape))
  return model


def init_masks(model, updater, config):
  """The method draws the initial masks of the configuration's plan.

  Returns:
    The planned final sparsities (masked-weight name -> sparsity).

  Raises:
    UserError: for a plan that does not fit the model.
  """
  try:
    plan = masks_lib.sparsity_plan(
        model, config.sparsity, config.distribution,
        erk_power_scale=config.erk_power_scale,
        dense_layers=config.dense_layers,
        first_layer_dense=config.first_layer_dense,
        custom_sparsity_map=config.custom_sparsity_map,
        structure=config.structure, on_unfit=config.on_unfit)
    # The method draws its initial masks (dense for GMP and SNIP).
    updater.init_masks(model, plan, seed=config.seed, method=config.mask_init,
                       train_steps=config.train_steps)
  except ValueError as e:
    raise UserError(str(e)) from e
  return dict(plan.final)


def optimizer_stack(inner, model, updater, mixed_precision):
  """`SparseOptimizer` around `inner` (sparse methods), loss-scaled for fp16.

  float16 gradients underflow without loss scaling; bfloat16's range is
  float32's and needs none. The LossScaleOptimizer is `inner`'s flavour's.
  """
  optimizer = (optimizers_lib.SparseOptimizer(inner, model, updater)
               if updater.sparse else inner)
  if mixed_precision == 'float16':
    optimizer = optimizers_lib.loss_scale_optimizer(optimizer)
  return optimizer


def build(strategy, info, config):
  """Builds model, masks and optimizer in the strategy's scope.

  Returns:
    (model, train_model, optimizer, updater, lr_schedule, planned
    sparsities).
  """
  with strategy.scope():
    flavours.module(config.keras).utils.set_random_seed(config.seed)
    updater = make_updater(config)
    model = build_model(config, info, updater.sparse)
    planned = init_masks(model, updater, config) if updater.sparse else {}
    # The model the training steps call: `model` itself, or a method's own
    # wrappers around its layers (tfmot_gmp: TFMOT's), sharing its variables.
    try:
      train_model = updater.wrap_model(model)
    except ValueError as e:  # A model the method's wrappers cannot take.
      raise UserError(str(e)) from e
    inner, lr_schedule = learning_rate.make_optimizer(
        config.train_steps, batch_size=config.batch_size,
        steps_multiplier=config.training_steps_multiplier,
        flavour=config.keras)
    optimizer = optimizer_stack(inner, model, updater, config.mixed_precision)
  return model, train_model, optimizer, updater, lr_schedule, planned


@contextlib.contextmanager
def dtype_policy(mixed_precision, flavour=flavours.TF_KERAS):
  """Builds the model's layers under the mixed-precision policy.

  Layers take the global policy (of their flavour) when they are created:
  it is set for the build only, so that it does not leak into later runs in
  the process. Variables (kernels, masks) stay float32; only the
  computation is cast.
  """
  mixed = flavours.module(flavour).mixed_precision
  previous = mixed.global_policy()
  if mixed_precision:
    mixed.set_global_policy(config_lib.MIXED_PRECISION[mixed_precision])
  try:
    yield
  finally:
    mixed.set_global_policy(previous)


def eval_dataset(config):
  """The run's evaluation dataset (read once, in order)."""
  return data.get_dataset(
      config.dataset, 'eval', config.eval_batch_size, training=False,
      data_dir=config.data_dir, preprocess_fn=config.eval_preprocess_fn,
      manual_dir=config.manual_dir)


def set_up(config):
  """Builds everything a run needs; nothing is written yet."""
  strategy, info = strategy_and_info(config)
  model, train_model, optimizer, updater, lr_schedule, planned = build(
      strategy, info, config)
  eval_ds = eval_dataset(config)
  return Run(
      config=config, strategy=strategy, info=info, model=model,
      train_model=train_model, optimizer=optimizer, updater=updater,
      lr_schedule=lr_schedule, planned_sparsities=planned,
      evaluate=evaluate_lib.make_evaluate(strategy, model, eval_ds,
                                          info.num_classes),
      say=report.say_fn(config.quiet))
