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
"""Gradual magnitude pruning (GMP) and its base, shared with GraNet and TFMOT.

* `gmp` (Zhu & Gupta): from dense masks, prune by magnitude to the cubic
  schedule of `schedules.cubic_sparsity` every ΔT steps between
  `begin_step` and `final_prune_step`; globally across layers (GraNet's
  default) or per layer to the chosen distribution (`scope`).

`GradualPruning` is a `DropGrowUpdater`: it only chooses how many weights
each layer drops (and, for GraNet, grows), and the one drop/grow engine does
the rest (exact counts, slots, ITOP record, connections changed). Counts are
planned in Python when the masks are drawn (`init_masks`), so the update is
a table lookup: exact, the same on every replica, and XLA-compilable. The
trainer gives every method the same `SparsityPlan`: `train_eval.sparsity` is
the final sparsity; layers kept dense or fixed by `custom_sparsity_map` keep
their masks and stay out of global pruning.
"""

import gin
import numpy as np
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import distributions
from rigl_tf import layers as masked_layers
from rigl_tf import masks as masks_lib
from rigl_tf import rng
from rigl_tf import schedules
from rigl_tf import topk
from rigl_tf.flops import cost
from rigl_tf.flops import counting
from rigl_tf.methods import base
from rigl_tf.methods import drop_grow
from rigl_tf.methods import registry

SCOPES = ('global', 'layerwise')
# GraNet's CIFAR schedule prunes from epoch 0 to epoch 110 of 160.
FINAL_PRUNE_FRACTION = 110 / 160
# Stream of the stateless RNG that breaks ties of global selections.
GLOBAL_STREAM = 3


def ones(mask):
  """Number of ones of a 0/1 mask (int32 scalar)."""
  return tf.cast(tf.reduce_sum(tf.cast(mask, tf.float32)), tf.int32)


class GradualPruning(drop_grow.DropGrowUpdater):
  """Gradual magnitude pruning on the drop/grow engine (GMP, GraNet)."""

  keeps_structure = False  # Not yet: its selections rank whole layers.

  def __init__(self,
               update_frequency=100,
               begin_step=0,
               final_prune_step=None,
               scope='global',
               end_step=None,
               drop_fraction=0.0,
               grow_init='zeros',
               redistribution='none',
               seed=None,
               name=None):
    super().__init__(
        drop_fraction=drop_fraction, drop_fraction_anneal='constant',
        update_frequency=update_frequency, begin_step=begin_step,
        end_step=-1, grow_init=grow_init, redistribution=redistribution,
        skip_weight_update_on_mask_update=False, seed=seed, name=name)
    checks.check_choice(scope, SCOPES, 'pruning scope')
    if final_prune_step is not None and final_prune_step <= begin_step:
      raise ValueError(f'final_prune_step ({final_prune_step}) must be after '
                       f'begin_step ({begin_step}).')
    self.scope = scope
    self.final_prune_step = final_prune_step
    self._requested_final_prune_step = final_prune_step
    self._requested_end_step = end_step
    self.train_steps = None
    self._table = None  # [K + 1, L] planned ones per layer (layer-wise).
    self._pool_table = None  # [K + 1] planned ones of the global pool.
    self._in_pool = None  # [L] bools: the layer is in global pruning.
    self._initial_counts = None

  # -- Set-up ---------------------------------------------------------------

  def stretch_steps(self, multiplier):
    """Scales begin_step and the given final_prune_step and end_step."""
    self.begin_step = int(self.begin_step * multiplier)
    if self._requested_final_prune_step is not None:
      self._requested_final_prune_step = int(
          self._requested_final_prune_step * multiplier)
      self.final_prune_step = self._requested_final_prune_step
    if self._requested_end_step is not None and self._requested_end_step > 0:
      self._requested_end_step = int(self._requested_end_step * multiplier)

  def _resolve_steps(self, train_steps):
    """Defaults given as fractions of the run, aligned to ΔT."""
    self.train_steps = train_steps
    self.final_prune_step = self._requested_final_prune_step
    if self.final_prune_step is None:
      if not train_steps:
        raise ValueError(
            f'{type(self).__name__} needs final_prune_step (or the run\'s '
            'train_steps, to default to GraNet\'s 110/160 of training).')
      span = int(FINAL_PRUNE_FRACTION * train_steps) - self.begin_step
      span = span // self.update_frequency * self.update_frequency
      self.final_prune_step = self.begin_step + max(span,
                                                    self.update_frequency)
    schedules.check_gradual_steps(self.begin_step, self.final_prune_step,
                                  self.update_frequency)
    if self._requested_end_step is None:
      self.end_step = self._default_end_step()
    else:
      self.end_step = int(self._requested_end_step)

  def _default_end_step(self):
    """Last mask-update step when `end_step` is not given."""
    return self.final_prune_step + self.update_frequency - 1

  def _draw_initial_masks(self, weights, plan, seed, method):
    """Initial masks: the pool dense, fixed layers at their sparsity."""
    fixed = {mw.name: plan.final[mw.name] for mw in weights
             if mw.name in plan.fixed}
    sparsities = {mw.name: fixed.get(mw.name, 0.0) for mw in weights}
    masks_lib.init_masks(weights, sparsities, seed=seed, method=method)

  def init_masks(self, model, plan, seed=0, method='random',
                 train_steps=None):
    """Draws the initial masks and plans the counts of every update."""
    self.set_structure(plan)
    self._resolve_steps(train_steps)
    weights = masked_layers.get_masked_weights(model)
    self._draw_initial_masks(weights, plan, seed, method)
    sizes = [mw.size for mw in weights]
    initial = [int(np.sum(mw.mask.numpy())) for mw in weights]
    final = [
        min(distributions.num_ones(plan.final[mw.name], mw.size),
            n) for mw, n in zip(weights, initial)
    ]
    in_pool = [
        self.scope == 'global' and mw.name not in plan.fixed
        for mw in weights
    ]
    args = (self.begin_step, self.final_prune_step, self.update_frequency)
    columns = []
    for mw, size, first, last in zip(weights, sizes, initial, final):
      if mw.name in plan.fixed:  # Outside the schedule: never pruned.
        last = first
      columns.append(schedules.cubic_counts(size, first, last, *args))
    self._table = np.array(columns, np.int64).T
    pool = [i for i, p in enumerate(in_pool) if p]
    self._pool_table = np.array(
        schedules.cubic_counts(
            max(sum(sizes[i] for i in pool), 1),
            sum(initial[i] for i in pool), sum(final[i] for i in pool),
            *args), np.int64)
    self._in_pool = np.array(in_pool, bool)
    self._initial_counts = np.array(initial, np.int64)
    self._layer_sizes = np.array(sizes, np.float64)
    self._final_sparsities = [
        None if mw.name in plan.fixed else plan.final[mw.name]
        for mw in weights
    ]

  def planned_counts(self, step):
    """Planned ones per layer after the update at `step` (Python ints).

    Layer-wise scope: each layer's cubic count. Global scope: the pool's
    total is planned (`planned_pool_count`); its layers' shares follow the
    magnitudes, so here they are None.
    """
    k = self._update_index(step)
    return [
        None if self._in_pool[i] else int(self._table[k, i])
        for i in range(self._table.shape[1])
    ]

  def planned_pool_count(self, step):
    """Planned ones of the global pool after the update at `step`."""
    return int(self._pool_table[self._update_index(step)])

  def _update_index(self, step):
    k = max(step - self.begin_step, 0) // self.update_frequency
    return min(k, len(self._pool_table) - 1)

  def build(self, masked_weights):
    if self._table is None:
      raise ValueError(
          f'{type(self).__name__} plans its schedule when it draws the '
          'initial masks: call updater.init_masks(model, '
          'masks.sparsity_plan(model, sparsity, ...), train_steps=...) '
          'before training.')
    super().build(masked_weights)
    self._target_density = base.state_variable(
        float(np.sum(self._initial_counts)) / max(
            sum(mw.size for mw in self._masked_weights), 1),
        name='target_density', dtype=tf.float32)
    # Ones per layer before the first pruning step and after each (the last
    # row follows the regeneration steps after it), for the FLOP count.
    rows = len(self._pool_table) + 1
    self._history = base.state_variable(
        lambda: tf.tile(tf.constant(self._initial_counts[None], tf.int32),
                        [rows, 1]), name='count_history')

  def pruning_steps(self):
    """The steps t_0 + k ΔT, k = 0..K, that prune (numpy int64)."""
    return self.begin_step + self.update_frequency * np.arange(
        len(self._pool_table), dtype=np.int64)

  # -- The update -----------------------------------------------------------

  def is_update_step(self, step):
    return schedules.is_update_step(step, self.begin_step, self.end_step,
                                    self.update_frequency)

  def _target_counts(self, masked_weights, step, n_active):
    """Ones per layer after this step's pruning (int32 [L], cross-replica)."""
    k = tf.minimum(
        tf.maximum(tf.cast(step, tf.int64) - self.begin_step, 0)
        // self.update_frequency, len(self._pool_table) - 1)
    target = tf.gather(tf.constant(self._table, tf.int32), k)
    if not self._in_pool.any():
      return tf.minimum(target, n_active)
    pool = [i for i, p in enumerate(self._in_pool) if p]
    scores = [
        tf.where(tf.cast(masked_weights[i].mask, tf.bool),
                 tf.abs(tf.cast(masked_weights[i].weight, tf.float32)), -1.0)
        for i in pool
    ]
    pool_active = tf.reduce_sum(tf.gather(n_active, pool))
    pool_target = tf.minimum(
        tf.gather(tf.constant(self._pool_table, tf.int32), k), pool_active)
    # Inactive positions score -1: the top pool_target are all active.
    counts = topk.global_top_n_counts(
        scores, pool_target,
        rng.stateless_key(self.seed, len(masked_weights), step,
                         GLOBAL_STREAM))
    target = tf.tensor_scatter_nd_update(
        target, [[i] for i in pool], counts)
    return tf.minimum(target, n_active)

  def _regenerate(self, strategy, masked_weights, dense_grads, step,
                  optimizer, n_active):
    """Neuroregeneration after pruning (none for GMP); returns r_t."""
    del strategy, masked_weights, dense_grads, step, optimizer, n_active
    return tf.constant(0.0)

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    n_active = tf.stack([ones(mw.mask) for mw in masked_weights])
    target = self._target_counts(masked_weights, step, n_active)
    # Pruning, then (GraNet) regeneration: two passes of the engine, so
    # that a weight pruned here and regrown at once starts from zero, as in
    # GraNet, while one dropped and regrown by the regeneration keeps its
    # value.
    self.drop_and_grow_layers(strategy, masked_weights, dense_grads, step,
                              optimizer, n_active - target,
                              tf.zeros_like(target))
    fraction = self._regenerate(strategy, masked_weights, dense_grads, step,
                                optimizer, target)
    self._current_drop_fraction.assign(fraction, read_value=False)
    self._record_counts(masked_weights, step)

  def _record_counts(self, masked_weights, step):
    """Density summary and count history after an update (cross-replica)."""
    total = tf.cast(sum(mw.size for mw in masked_weights), tf.float32)
    counts = tf.stack([ones(mw.mask) for mw in masked_weights])
    self._target_density.assign(
        tf.cast(tf.reduce_sum(counts), tf.float32) / total, read_value=False)
    row = tf.minimum(
        tf.cast((tf.cast(step, tf.int64) - self.begin_step)
                // self.update_frequency + 1, tf.int32),
        len(self._pool_table))
    self._history.assign(
        tf.tensor_scatter_nd_update(self._history, [[row]], counts[None]),
        read_value=False)

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    del dense_grad, grad_ema, key
    return tf.zeros_like(tf.cast(weight, tf.float32))

  # -- Reports --------------------------------------------------------------

  def summaries(self):
    """Base summaries, the density after the last update, r_t (GraNet)."""
    result = super().summaries()
    result.pop('drop_fraction', None)
    if self._masked_weights:
      result['density/after_last_update'] = tf.identity(self._target_density)
    return result

  def count_history(self):
    """Ones per layer before the first pruning step and after each.

    Returns:
      float64 [K + 2, L]: row 0 before pruning, row k + 1 after the pruning
      step t_0 + k ΔT (the last row: after the latest update). Before
      training (eval_once) the planned counts, a global pool's spread over
      its layers by size.
    """
    if self._masked_weights:
      return np.asarray(self._history.numpy(), np.float64)
    sizes = self._layer_sizes
    rows = [np.asarray(self._initial_counts, np.float64)]
    for k in range(len(self._pool_table)):
      row = np.array(self._table[k], np.float64)
      if self._in_pool.any():
        share = sizes[self._in_pool] / sizes[self._in_pool].sum()
        row[self._in_pool] = share * self._pool_table[k]
      rows.append(row)
    return np.array(rows)

  @classmethod
  def training_flops_per_step(cls, costs):
    """Mean of 3 f(d_t) over the steps (+ f_D - f(d_t) on regrowth steps).

    A run passes the FLOPs of the densities its masks had at every step
    (`training_cost_options`); before training (the flops CLI), the planned
    cubic schedule from dense to `final_density` with the default steps.
    """
    step_flops = costs.options.get('density_schedule_flops')
    regrowth = costs.options.get('regrowth_steps')
    if step_flops is None:
      final = costs.options.get('final_density')
      if None in (costs.num_steps, costs.flops_at_density, final):
        raise ValueError(f'Training FLOPs of {cls.method_name!r} need the '
                         'per-step densities of a run, or num_steps, '
                         'flops_at_density and final_density.')
      frequency = costs.update_frequency or 100
      end = max(int(FINAL_PRUNE_FRACTION * costs.num_steps) // frequency
                * frequency, frequency)
      step_flops = cost.gradual_schedule_flops(
          costs.flops_at_density, costs.num_steps, initial_density=1.0,
          final_density=final, begin_step=0, end_step=end,
          update_frequency=frequency)
      if cls.regrows:
        regrowth = np.arange(0, costs.num_steps, frequency)
    return cost.gradual_training_flops_per_step(
        step_flops, costs.f_dense, regrowth_steps=regrowth)

  regrows = False

  def training_cost_options(self, train_steps, costs=None):
    """Per-step FLOPs of the actual density schedule (see `flops`)."""
    if costs is None or not self._masked_weights:
      return {}
    history = self.count_history()
    # A masked kernel's counted op (records name their mask).
    op_of_mask = {c.mask_name: c.name for c in costs
                  if c.counted and c.mask_name}
    names = [(i, op_of_mask[mw.name])
             for i, mw in enumerate(self._masked_weights)
             if mw.name in op_of_mask]
    sizes = self._layer_sizes
    row_of_step = np.searchsorted(self._mask_change_steps(),
                                  np.arange(train_steps), side='right')
    row_flops = [
        counting.summarize(counting.with_densities(
            costs, {name: float(row[i] / sizes[i]) for i, name in names}
        )).flops for row in history
    ]
    options = {'density_schedule_flops':
               np.asarray(row_flops)[row_of_step]}
    options.update(self._regrowth_cost_options(train_steps))
    return options

  def _mask_change_steps(self):
    """Per pruning step, the first optimizer step trained with its masks."""
    return self.pruning_steps() + 1

  def _regrowth_cost_options(self, train_steps):
    del train_steps
    return {}


@registry.register('gmp')
@gin.configurable
class GMP(GradualPruning):
  """Gradual magnitude pruning (Zhu & Gupta 2017), from dense masks.

  Every ΔT steps from `begin_step` to `final_prune_step`, the masks keep the
  largest |w|: `scope='global'` ranks all pooled layers together (GraNet's
  GMP), `'layerwise'` gives each layer its cubic count towards its final
  sparsity from the distribution. Pruned weights never come back.
  """

  def __init__(self, update_frequency=100, begin_step=0,
               final_prune_step=None, scope='global', seed=None, name=None):
    """Configures GMP (gin binds these on `GMP`).

    Args:
      update_frequency: ΔT, steps between two pruning steps.
      begin_step: t_0, the first pruning step.
      final_prune_step: t_end, where the final sparsity is reached; None:
        110/160 of `train_steps` (GraNet's CIFAR schedule), a multiple of ΔT.
      scope: 'global' (one magnitude ranking over the pooled layers) or
        'layerwise' (each layer to its share of the distribution).
      seed: seed of the stateless RNG (ties); None: the run's seed.
      name: module name.
    """
    super().__init__(update_frequency=update_frequency,
                     begin_step=begin_step,
                     final_prune_step=final_prune_step, scope=scope,
                     seed=seed, name=name)
