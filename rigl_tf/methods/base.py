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
"""The base class of every sparse training method.

A method is a `MaskUpdater` subclass plugged into `SparseOptimizer`. The
optimizer masks the gradients, calls `on_step` (every step), applies the
wrapped optimizer (re-masking the weights it could move:
`slots.needs_remasking`), and, on the steps where `is_update_step(step)` is
true, calls `update_masks` (which leaves dropped weights at 0); both hooks
run in cross-replica context with the all-reduced dense gradients. A method
says when and how masks change, and what a training step costs
(`training_flops_per_step`, its training-cost rule, which `rigl_tf.flops` is
handed). The trainer tells a method the run's length and seed
(`configure_run`) before it is built, and its training steps call the model
`wrap_model` returns (the model itself, except for a method that acts
through layer wrappers of its own, such as `tfmot_gmp` through TFMOT's).

The base class keeps the "ever active" masks behind the ITOP rate (in-time
over-parameterisation: the fraction of weights that were active at some
point). Everything that writes a mask runs per device inside
`strategy.extended.update`, from inputs that are identical on every replica
(all-reduced gradients, mirrored variables, stateless RNG keyed by (seed,
step, layer index)), so all replicas compute the same masks.
"""

import numpy as np
import tensorflow as tf

from rigl_tf import layers as masked_layers
from rigl_tf import masks as masks_lib
from rigl_tf import slots
from rigl_tf import structure as structure_lib


def state_variable(initial_value, name, dtype=None):
  """A non-trainable updater state variable, mirrored under a strategy.

  Written only in cross-replica context (or identically on every replica);
  a replica-context write keeps the first replica's value.

  Args:
    initial_value: tensor, or a callable returning one.
    name: variable name.
    dtype: optional dtype.

  Returns:
    A `tf.Variable`.
  """
  return tf.Variable(
      initial_value, trainable=False, name=name, dtype=dtype,
      synchronization=tf.VariableSynchronization.ON_WRITE,
      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


class MaskUpdater(tf.Module):
  """The base class of every method: fixed masks unless a subclass changes them.

  Subclasses override `is_update_step` and `update_masks` (and `on_step` if
  they keep per-step state); the optimizer calls them, so a new method needs
  no change to `SparseOptimizer`.

  The base class also keeps, per masked weight, an "ever active" 0/1
  variable: the initial mask OR-ed with the mask after every update
  (`record_ever_active`). `itop_rate()` is the fraction of masked weights
  that were ever active; for static masks it equals the density.

  Attributes:
    sparse: whether the method trains masked layers (False only for dense).
    skip_weight_update_on_mask_update: whether the optimizer skips the
      weight update on a step where the masks change (RigL's default).
    update_leaves_masked_state: whether `update_masks` itself leaves every
      masked entry of the weights at 0 and of their optimizer slots at a
      fresh slot's value (the drop/grow engine does); if not, the optimizer
      does it after each update (a pass over every masked weight and slot).
  """

  sparse = True
  skip_weight_update_on_mask_update = False
  update_leaves_masked_state = False
  # Whether every mask update keeps a structure's per-row counts
  # (`rigl_tf.structure`): fixed masks do, and the drop/grow engine's
  # methods, which select within each row.
  keeps_structure = True

  @classmethod
  def structure_refusal(cls, structure):
    """Why the method cannot train with `structure` (None if it can)."""
    if not structure.structured or (cls.sparse and cls.keeps_structure):
      return None
    return (f'{cls.method_name} does not keep structured masks (static, '
            'set, snfs and rigl do); use one of those, or train_eval.'
            "structure = 'unstructured'.")

  def __init__(self, seed=None, name=None):
    """Creates the updater.

    Args:
      seed: seed of the stateless RNG; None: the run's seed
        (`configure_run`), 0 until then.
      name: module name.
    """
    super().__init__(name=name or type(self).__name__)
    self._seed_given = seed is not None
    self.seed = 0 if seed is None else int(seed)
    self._masked_weights = []
    self._ever_active = []
    # The run's structure (`set_structure`): masked-weight name ->
    # `structure.Layout` of the structured ones, and why others are not.
    self.structure = structure_lib.Structure()
    self.layouts = {}
    self.unstructured = {}

  def build(self, masked_weights):
    """Creates per-layer state; called once, in the strategy's scope.

    Subclasses that override it call `super().build(masked_weights)` first.

    Args:
      masked_weights: the list of `MaskedWeight` the optimizer manages.
    """
    self._masked_weights = list(masked_weights)
    # Appended to the lists made in __init__, not new lists: a checkpoint
    # restored before the first step matched those lists, and restores
    # their elements as they are appended.
    for mw in self._masked_weights:
      self._ever_active.append(
          state_variable(lambda m=mw.mask: tf.cast(m, tf.float32),
                         name=f'ever_active_{mw.index}'))

  def init_masks(self, model, plan, seed=0, method='random',
                 train_steps=None):
    """Draws the initial masks; the trainer calls it before training.

    Static and dynamic methods start from the plan's final sparsities;
    gradual methods (GMP, GraNet) and SNIP override it (dense or
    `init_density` masks) and keep the plan for their schedule.

    Args:
      model: the sparsified model (or list of `MaskedWeight`).
      plan: a `masks.SparsityPlan`.
      seed: seed of the stateless RNG.
      method: 'random' or 'magnitude' (`masks.init_masks`).
      train_steps: the run's length, for defaults given as fractions of it
        (None when unknown).
    """
    del train_steps
    self.set_structure(plan)
    masks_lib.init_masks(model, plan.final, seed=seed, method=method,
                         layouts=plan.layouts)

  def set_structure(self, plan):
    """Keeps the plan's structured layouts, for the mask updates.

    Raises:
      ValueError: a structure this configuration of the method cannot keep.
    """
    refusal = self.structure_refusal(plan.structure)
    if refusal:
      raise ValueError(refusal)
    self.structure = plan.structure
    self.layouts = dict(plan.layouts)
    self.unstructured = dict(plan.unstructured)

  def structure_violations(self, model_or_weights, planned):
    """One line per structured weight whose rows break their count.

    A row must hold the structure's N (N:M) or, for constant fan-in, k =
    n_in - floor(s·n_in) at the weight's planned sparsity s.

    Args:
      model_or_weights: the model (or its `MaskedWeight`s).
      planned: masked-weight name -> planned (final) sparsity.

    Returns:
      list of str, empty when every structured mask holds.
    """
    lines = []
    for mw in masked_layers.get_masked_weights(model_or_weights):
      layout = self.layouts.get(mw.name)
      if layout is None:
        continue
      counts = layout.row_counts(mw.mask).numpy()
      expected = self.expected_row_counts(layout, counts, planned[mw.name])
      bad = counts != expected
      if bad.any():
        lines.append(
            f'{mw.name}: {int(bad.sum())} of {layout.rows} rows hold '
            f'{sorted(set(counts[bad].tolist()))[:5]} ones, not '
            f'{sorted(set(expected[bad].tolist()))[:5]}')
    return lines

  def expected_row_counts(self, layout, counts, sparsity):
    """int [rows]: the ones each row of `layout` must hold.

    Args:
      layout: a `structure.Layout`.
      counts: numpy int [rows], the ones its rows hold now.
      sparsity: the weight's planned sparsity.
    """
    del counts
    return np.full([layout.rows], layout.ones_per_row(sparsity))

  def structure_report(self, model_or_weights):
    """The run's structure for the report (None when unstructured).

    Its 'ablated': name -> output units without a weight (SRigL's neuron
    ablation), for the layers that have any.
    """
    if not self.structure.structured:
      return None
    ablated = {}
    for mw in masked_layers.get_masked_weights(model_or_weights):
      layout = self.layouts.get(mw.name)
      if layout is not None and self.structure.kind != 'n:m':
        empty = int((layout.row_counts(mw.mask).numpy() == 0).sum())
        if empty:
          ablated[mw.name] = empty
    return {'name': self.structure.name,
            'layers': {name: layout.describe(self.structure)
                       for name, layout in self.layouts.items()},
            'unstructured': dict(self.unstructured), 'ablated': ablated}

  def wrap_model(self, model):
    """The model whose forward pass the training steps call.

    The trainer calls it once, in the strategy's scope, after
    `init_masks`. A method that acts through layer wrappers of its own
    (`tfmot_gmp`: TFMOT's `PruneLowMagnitude`) returns a model of those
    wrappers around the masked layers, sharing `model`'s variables, and
    keeps the wrappers (so their state is checkpointed with the updater).
    Everything else (the optimizer, evaluation, reports, checkpoints of the
    model) uses `model` itself.

    Args:
      model: the sparsified model with its initial masks.

    Returns:
      `model` (for every method that needs no wrapper).
    """
    return model

  def is_update_step(self, step):
    """Whether masks change at `step` (a Python bool or a scalar tensor)."""
    del step
    return False

  def on_step(self, strategy, masked_weights, dense_grads, step):
    """Runs every step, in cross-replica context, before the weight update.

    For state that follows every step (SNFS's gradient EMA). Write variables
    with `strategy.extended.update`, as in `update_masks`.

    Args:
      strategy: the current `tf.distribute.Strategy`.
      masked_weights: list of `MaskedWeight`.
      dense_grads: list of gradients (dense, all-reduced), aligned.
      step: scalar int tensor, the step being taken.
    """
    del strategy, masked_weights, dense_grads, step

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    """Changes masks, weights and slots; runs in cross-replica context.

    Write variables with `strategy.extended.update(var, fn, args=...)`;
    `dense_grads` (all-reduced, one per masked weight) become per-device
    values there. Implementations end with `record_ever_active(strategy)`.

    Args:
      strategy: the current `tf.distribute.Strategy`.
      masked_weights: list of `MaskedWeight`.
      dense_grads: list of gradients (dense, all-reduced), aligned.
      step: scalar int tensor, the step being taken.
      optimizer: the wrapped Keras optimizer (for its slots).
    """
    del strategy, masked_weights, dense_grads, step, optimizer

  def record_ever_active(self, strategy):
    """ORs the current masks into the "ever active" masks (cross-replica)."""
    for mw, ever in zip(self._masked_weights, self._ever_active):
      strategy.extended.update(ever, _or_assign, args=(mw.mask,), group=False)

  def _ever_active_values(self):
    # The current mask is OR-ed in too, so that an updater that forgets
    # `record_ever_active` still reports every weight active now.
    return [
        tf.maximum(tf.cast(ever, tf.float32), tf.cast(mw.mask, tf.float32))
        for mw, ever in zip(self._masked_weights, self._ever_active)
    ]

  def layer_itop_rates(self):
    """dict masked-weight name -> fraction of its weights ever active."""
    return {
        mw.name: tf.reduce_mean(ever) for mw, ever in zip(
            self._masked_weights, self._ever_active_values())
    }

  def itop_rate(self):
    """Fraction of all masked weights that were ever active (a tensor)."""
    if not self._masked_weights:
      return tf.constant(1.0)
    ever = sum(tf.reduce_sum(e) for e in self._ever_active_values())
    total = sum(mw.size for mw in self._masked_weights)
    return ever / float(total)

  def configure_run(self, train_steps=None, seed=None):
    """Tells the updater about the run, before `build` (the trainer does).

    Subclasses whose defaults depend on the run's length (the end of mask
    updates) resolve them here, after calling this method.

    Args:
      train_steps: the run's number of optimizer steps, if known.
      seed: the run's seed; it keys the updater's stateless randomness
        unless a seed was given to the constructor.
    """
    del train_steps
    if seed is not None and not self._seed_given:
      self.seed = int(seed)

  def stretch_steps(self, multiplier):
    """Scales the method's step hyperparameters by `multiplier`.

    RigL's `training_steps_multiplier` runs (1x, 2x, 5x) stretch the mask
    schedule with the training; the trainer calls this before
    `configure_run`. Fixed masks have no schedule.

    Args:
      multiplier: the run's training_steps_multiplier.
    """
    del multiplier

  @classmethod
  def training_flops_per_step(cls, costs):
    """The method's training-cost rule: FLOPs per example and step.

    Fixed sparse masks: a sparse forward pass, sparse input gradients and
    sparse weight gradients, 3 f_S. Reports hand the class to
    `flops.training_flops_ratio`; a new method states its own rule.

    Args:
      costs: a `flops.TrainingCostInputs` (f_dense, f_sparse and the run's
        options, e.g. update_frequency).

    Returns:
      The average training FLOPs of one step for one example.
    """
    return 3.0 * costs.f_sparse

  def training_cost_options(self, train_steps, costs=None):
    """Inputs of `flops.training_flops_ratio` for this method's run.

    Args:
      train_steps: the run's number of steps.
      costs: the model's `flops.layer_costs` (for methods whose cost follows
        a density schedule).

    Returns:
      dict of keyword arguments (none for fixed masks).
    """
    del train_steps, costs
    return {}

  def summaries(self):
    """Scalars for TensorBoard: dict name -> tensor or variable.

    `itop_rate`, and per masked weight `density/<name>` and `itop/<name>`.
    """
    if not self._masked_weights:
      return {}
    result = {'itop_rate': self.itop_rate()}
    for mw in self._masked_weights:
      result[f'density/{mw.name}'] = tf.reduce_mean(
          tf.cast(mw.mask, tf.float32))
    for name, rate in self.layer_itop_rates().items():
      result[f'itop/{name}'] = rate
    return result


def _or_assign(ever, mask):
  return ever.assign(slots.ever_or(ever, mask), read_value=False)
