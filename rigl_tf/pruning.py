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
"""Methods that prune: GMP, GraNet, TFMOT's GMP and SNIP, as mask updaters.

* `gmp` (Zhu & Gupta): from dense masks, prune by magnitude to the cubic
  schedule of `schedules.cubic_sparsity` every ΔT steps between
  `begin_step` and `final_prune_step`; globally across layers (GraNet's
  default) or per layer to the chosen distribution (`scope`).
* `granet` (Liu et al. 2021, VITA-Group/GraNet): the same gradual pruning,
  from dense masks or from `init_density` masks (GraNet-ST), plus
  neuroregeneration at every update step until `end_step`: per layer, drop a
  further floor(r_t · n) of the active weights by magnitude and regrow as
  many where the dense gradient is largest, r_t cosine-decayed from
  `prune_rate` to 0.005 over the whole training.
* `tfmot_gmp`: the independent reference for `gmp`: TensorFlow Model
  Optimization prunes layer-wise to `PolynomialDecay(power=3)`, the model
  trained through `tfmot.sparsity.keras.prune_low_magnitude` wrappers around
  the masked layers (`TFMOTGMP.wrap_model`), its masks copied into this
  library's after each of its pruning steps.
* `snip` (Lee et al. 2019): at step 0, with dense masks, keep per layer the
  budget of the distribution (or globally) with the largest |g · w|, the
  gradient all-reduced over replicas; no weight update on that step; the
  masks never change afterwards.

GMP and GraNet are `DropGrowUpdater`s: they only choose how many weights
each layer drops and grows, and the one drop/grow engine of `updaters`
does the rest (exact counts, slots, ITOP record, connections changed).
Counts are planned in Python when the masks are drawn (`init_masks`), so
the update is a table lookup: exact, the same on every replica, and
XLA-compilable. The trainer gives every method the same `SparsityPlan`:
`train_eval.sparsity` is the final sparsity; layers kept dense or fixed by
`custom_sparsity_map` keep their masks and stay out of global pruning.
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from rigl_tf import masks as masks_lib
from rigl_tf import schedules
from rigl_tf import updaters

SCOPES = ('global', 'layerwise')
GROWTHS = ('random', 'gradient', 'momentum')
GRANET_REDISTRIBUTIONS = ('none', 'magnitude', 'nonzeros')
INITIAL_MASKS = ('erk', 'uniform', 'dense', 'prune_uniform', 'prune_global')

# GraNet's CIFAR schedule prunes from epoch 0 to epoch 110 of 160.
FINAL_PRUNE_FRACTION = 110 / 160
# Stream of the stateless RNG that breaks ties of global selections.
_GLOBAL_STREAM = 3


def _check_choice(value, choices, what):
  if value not in choices:
    raise ValueError(f'Unknown {what} {value!r}; choose one of '
                     f'{", ".join(choices)}.')


def _ones(mask):
  return tf.cast(tf.reduce_sum(tf.cast(mask, tf.float32)), tf.int32)


class _GradualPruning(updaters.DropGrowUpdater):
  """Gradual magnitude pruning on the drop/grow engine (GMP, GraNet)."""

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
    _check_choice(scope, SCOPES, 'pruning scope')
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
    from rigl_tf import layers  # pylint: disable=g-import-not-at-top
    self._resolve_steps(train_steps)
    weights = layers.get_masked_weights(model)
    self._draw_initial_masks(weights, plan, seed, method)
    sizes = [mw.size for mw in weights]
    initial = [int(np.sum(mw.mask.numpy())) for mw in weights]
    final = [
        min(masks_lib.distributions.num_ones(plan.final[mw.name], mw.size),
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
    self._target_density = updaters.state_variable(
        float(np.sum(self._initial_counts)) / max(
            sum(mw.size for mw in self._masked_weights), 1),
        name='target_density', dtype=tf.float32)
    # Ones per layer before the first pruning step and after each (the last
    # row follows the regeneration steps after it), for the FLOP count.
    rows = len(self._pool_table) + 1
    self._history = updaters.state_variable(
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
    counts = masks_lib.global_top_n_counts(
        scores, pool_target,
        updaters.layer_key(self.seed, len(masked_weights), step,
                           _GLOBAL_STREAM))
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
    n_active = tf.stack([_ones(mw.mask) for mw in masked_weights])
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
    counts = tf.stack([_ones(mw.mask) for mw in masked_weights])
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
    from rigl_tf import flops  # pylint: disable=g-import-not-at-top
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
      step_flops = flops.gradual_schedule_flops(
          costs.flops_at_density, costs.num_steps, initial_density=1.0,
          final_density=final, begin_step=0, end_step=end,
          update_frequency=frequency)
      if cls.regrows:
        regrowth = np.arange(0, costs.num_steps, frequency)
    return flops.gradual_training_flops_per_step(
        step_flops, costs.f_dense, regrowth_steps=regrowth)

  regrows = False

  def training_cost_options(self, train_steps, costs=None):
    """Per-step FLOPs of the actual density schedule (see `flops`)."""
    if costs is None or not self._masked_weights:
      return {}
    from rigl_tf import flops  # pylint: disable=g-import-not-at-top
    history = self.count_history()
    counted = {c.name for c in costs if c.counted}
    names = [(i, mw.layer.name) for i, mw in enumerate(self._masked_weights)
             if mw.layer.name in counted]
    sizes = self._layer_sizes
    row_of_step = np.searchsorted(self._mask_change_steps(),
                                  np.arange(train_steps), side='right')
    row_flops = [
        flops.summarize(flops.with_densities(
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


@updaters.register('gmp')
@gin.configurable
class GMP(_GradualPruning):
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


@updaters.register('granet')
@gin.configurable
class GraNet(_GradualPruning):
  """GraNet (Liu et al. 2021): gradual pruning plus neuroregeneration.

  At every update step from `begin_step` to `end_step`: first the gradual
  magnitude pruning of GMP; then, per layer with n weights left, drop the
  floor(r_t · n) smallest-magnitude ones and regrow as many where the
  `growth` score is largest among the positions not kept (dense gradient by
  default). r_t = r_min + (r_0 - r_min) (1 + cos(π t / T)) / 2 over the
  whole training T (GraNet's `CosineDecay`, r_min = 0.005). Regeneration
  goes on after `final_prune_step`, keeping the final counts, until
  `end_step` (default: the end of training).

  `init_density = 1` is dense-to-sparse GraNet; `init_density < 1` with
  `initial_mask='erk'` is GraNet-ST (GraNet's `--sparse-init ERK
  --init-density 0.5`). GraNet removes ceil(r_t · n); this port floors, as
  the drop/grow engine does for every method.
  """

  def __init__(self,
               update_frequency=100,
               begin_step=0,
               final_prune_step=None,
               end_step=-1,
               scope='global',
               prune_rate=0.5,
               min_prune_rate=0.005,
               growth='gradient',
               redistribution='none',
               init_density=1.0,
               initial_mask='erk',
               grow_init='zeros',
               seed=None,
               name=None):
    """Configures GraNet (gin binds these on `GraNet`).

    Args:
      update_frequency: ΔT, steps between two mask updates.
      begin_step: the first update (pruning and regeneration).
      final_prune_step: where pruning reaches the final sparsity; None:
        110/160 of `train_steps` (GraNet's CIFAR schedule).
      end_step: last regeneration step; < 0: until training ends.
      scope: 'global' (GraNet) or 'layerwise' (GraNet_uniform, with the
        chosen distribution) pruning.
      prune_rate: r_0, the initial regeneration fraction (GraNet: 0.5).
      min_prune_rate: r_min, where the cosine ends (GraNet: 0.005).
      growth: 'gradient' (|dense gradient|), 'random', or 'momentum'
        (|EMA of the dense gradients|, decay 0.9: the momentum of the
        masked positions, which the optimizer's slots do not keep here).
      redistribution: 'none', 'magnitude' or 'nonzeros': share the regrown
        weights between layers by mean |w| or number of non-zeros.
      init_density: density of the initial masks over the pruned layers
        (1: dense-to-sparse).
      initial_mask: for init_density < 1: 'erk' or 'uniform' random masks,
        'prune_uniform' / 'prune_global' (the initial weights pruned by
        magnitude per layer / globally), or 'dense' (only with density 1).
      grow_init: value of regrown weights ('zeros', as GraNet).
      seed: seed of the stateless RNG; None: the run's seed.
      name: module name.

    Raises:
      ValueError: for an invalid value.
    """
    _check_choice(growth, GROWTHS, 'growth')
    _check_choice(redistribution, GRANET_REDISTRIBUTIONS, 'redistribution')
    initial_mask = initial_mask.lower()
    _check_choice(initial_mask, INITIAL_MASKS, 'initial_mask')
    if not 0.0 < init_density <= 1.0:
      raise ValueError(f'init_density must be in (0, 1], got {init_density}.')
    if initial_mask == 'dense' and init_density < 1.0:
      raise ValueError("initial_mask='dense' needs init_density = 1.")
    if not 0.0 <= min_prune_rate <= prune_rate <= 1.0:
      raise ValueError('Need 0 <= min_prune_rate <= prune_rate <= 1, got '
                       f'{min_prune_rate} and {prune_rate}.')
    self.growth = growth
    self.uses_grad_ema = growth == 'momentum'
    super().__init__(update_frequency=update_frequency,
                     begin_step=begin_step,
                     final_prune_step=final_prune_step, scope=scope,
                     end_step=end_step, drop_fraction=prune_rate,
                     grow_init=grow_init, redistribution=redistribution,
                     seed=seed, name=name)
    self.prune_rate = float(prune_rate)
    self.min_prune_rate = float(min_prune_rate)
    self.init_density = float(init_density)
    self.initial_mask = initial_mask

  regrows = True

  def _default_end_step(self):
    return -1

  def _horizon(self):
    """T of the cosine: the whole training (or end_step + 1 if unknown)."""
    if self.train_steps:
      return self.train_steps
    if self.end_step >= 0:
      return self.end_step + 1
    raise ValueError('GraNet needs train_steps (or end_step) for the '
                     'cosine decay of its regeneration fraction.')

  def regrowth_fraction_at(self, step):
    """r_t (a Python float for a Python step, else a float32 tensor)."""
    return schedules.regrowth_fraction_at(step, self.prune_rate,
                                          self._horizon(),
                                          self.min_prune_rate)

  def _draw_initial_masks(self, weights, plan, seed, method):
    if self.init_density >= 1.0:
      return super()._draw_initial_masks(weights, plan, seed, method)
    sparsity = 1.0 - self.init_density
    if self.initial_mask == 'prune_global':
      pool = [mw for mw in weights if mw.name not in plan.fixed]
      total = sum(mw.size for mw in pool)
      keep = masks_lib.distributions.num_ones(sparsity, total)
      counts = masks_lib.global_top_n_counts(
          [tf.abs(mw.weight) for mw in pool], keep,
          masks_lib.stateless_key(seed, len(weights), _GLOBAL_STREAM))
      sparsities = {mw.name: plan.final[mw.name] for mw in weights}
      for mw, n in zip(pool, counts.numpy()):
        # A share whose floor count is exactly n ones.
        sparsities[mw.name] = (mw.size - int(n)) / mw.size
      masks_lib.init_masks(weights, sparsities, seed=seed,
                           method='magnitude')
      return
    distribution = 'erk' if self.initial_mask == 'erk' else 'uniform'
    sparsities = plan.at(sparsity, distribution)
    masks_lib.init_masks(
        weights, sparsities, seed=seed,
        method='magnitude' if self.initial_mask == 'prune_uniform'
        else 'random')

  def _regenerate(self, strategy, masked_weights, dense_grads, step,
                  optimizer, n_active):
    """Drops floor(r_t · n) more per layer, regrows as many by `growth`."""
    fraction = tf.cast(self.regrowth_fraction_at(step), tf.float32)
    n_regrow = tf.cast(
        tf.floor(tf.cast(n_active, tf.float32) * fraction), tf.int32)
    # Without redistribution, every layer regrows what it dropped.
    n_grow = self.grow_counts(n_active, n_regrow)
    self.drop_and_grow_layers(strategy, masked_weights, dense_grads, step,
                              optimizer, n_regrow, n_grow)
    return fraction

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    if self.growth == 'random':
      return masks_lib.hashed_uniform(tf.shape(weight), key)
    if self.growth == 'momentum':
      return tf.abs(grad_ema)
    return tf.abs(dense_grad)

  def summaries(self):
    """Adds r_t of the last update as `regrowth_fraction`."""
    result = super().summaries()
    if self._masked_weights:
      result['regrowth_fraction'] = tf.identity(self._current_drop_fraction)
    return result

  def _regrowth_cost_options(self, train_steps):
    # Every update step regrows by the dense gradient, as RigL's does.
    last = train_steps - 1 if self.end_step < 0 else min(self.end_step,
                                                         train_steps - 1)
    steps = np.arange(self.begin_step, last + 1, self.update_frequency)
    if self.growth == 'random':
      steps = steps[:0]
    return {'regrowth_steps': steps.astype(np.int64)}


@updaters.register('tfmot_gmp')
@gin.configurable
class TFMOTGMP(_GradualPruning):
  """GMP by TensorFlow Model Optimization: the independent reference.

  `wrap_model` returns the model the trainer trains: every pruned masked
  layer wrapped by `tfmot.sparsity.keras.prune_low_magnitude` (a
  `PruneLowMagnitude` layer, sharing the masked layer's variables) with
  `tfmot.sparsity.keras.PolynomialDecay(power=3)` from sparsity 0 to the
  layer's final sparsity of the distribution; `begin_step`,
  `final_prune_step` and `update_frequency` are the schedule's
  `begin_step`, `end_step` and `frequency`. TFMOT does the pruning: every
  training call of a wrapper counts one step of its `pruning_step` (from 1:
  the `UpdatePruningStep` callback sets 0 before training, as `wrap_model`
  does) and, on the schedule's steps, recomputes the mask from |w| and
  zeroes the pruned weights before the forward pass. So TFMOT's step s is
  the optimizer's step s - 1, and its pruning at s ranks the weights left
  by the update of step s - 2 (where `gmp` would prune after step s - 2).

  After a step where TFMOT pruned, `update_masks` copies TFMOT's masks into
  this library's masks and zeroes the pruned weights and their optimizer
  slots: the invariant, the sparsity table, the FLOP count of the density
  schedule reached, the ITOP record and the summaries are those of every
  other method. TFMOT is layer-wise, and keeps the max(round(n (1 - s)), 1)
  largest |w| of a layer of n weights, s its schedule's float32 sparsity
  (this library: n - floor(s n)); weights tied with the threshold are kept
  too. Layers fixed by the user are not wrapped.
  """

  # Copying TFMOT's masks zeroes the pruned slots, where a fresh slot may
  # not be 0 (Adagrad): the optimizer's pass after the update sets them.
  update_leaves_masked_state = False

  def __init__(self, update_frequency=100, begin_step=0,
               final_prune_step=None, seed=None, name=None):
    """Configures TFMOT's GMP (gin binds these on `TFMOTGMP`).

    Args:
      update_frequency: `PolynomialDecay.frequency`.
      begin_step: `PolynomialDecay.begin_step`.
      final_prune_step: `PolynomialDecay.end_step`; None: 110/160 of
        `train_steps`, as `gmp`.
      seed: unused (TFMOT's selection is deterministic).
      name: module name.
    """
    super().__init__(update_frequency=update_frequency,
                     begin_step=begin_step,
                     final_prune_step=final_prune_step, scope='layerwise',
                     seed=seed, name=name)
    # TFMOT's wrappers: tracked, so that their state (mask, threshold,
    # pruning_step) is checkpointed with the updater.
    self._wrappers = []
    self._set_tfmot_masks(None)

  @tf.__internal__.tracking.no_automatic_dependency_tracking
  def _set_tfmot_masks(self, tfmot_masks):
    # Per masked weight, TFMOT's mask variable (None: not pruned). Already
    # tracked through the wrappers.
    self._tfmot_masks = tfmot_masks

  def polynomial_decay(self, final_sparsity):
    """TFMOT's schedule of a layer pruned to `final_sparsity`."""
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=final_sparsity,
        begin_step=self.begin_step, end_step=self.final_prune_step,
        power=3, frequency=self.update_frequency)

  def wrap_model(self, model):
    """The model with `prune_low_magnitude` around the pruned layers.

    Args:
      model: the sparsified (Sequential or Functional) model after
        `init_masks`.

    Returns:
      A clone of `model` made of the same layers, each pruned masked layer
      inside TFMOT's `PruneLowMagnitude`.

    Raises:
      ValueError: before `init_masks`, if called twice, or for a layer
        whose masked weights have different final sparsities (TFMOT prunes
        a layer's weights to one schedule).
    """
    from rigl_tf import layers  # pylint: disable=g-import-not-at-top
    if self._table is None:
      raise ValueError('TFMOTGMP.wrap_model needs the schedule: call '
                       'updater.init_masks(model, plan, ...) first.')
    if self._wrappers:
      raise ValueError('TFMOTGMP wraps one model.')
    finals = {}
    for mw, sparsity in zip(layers.get_masked_weights(model),
                            self._final_sparsities):
      finals.setdefault(id(mw.layer), []).append(sparsity)

    def wrap(layer):
      if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer, clone_function=wrap)
      sparsities = finals.get(id(layer))
      if not sparsities or None in sparsities:  # Unmasked or user-fixed.
        return layer
      if len(set(sparsities)) > 1:
        raise ValueError(
            f'tfmot_gmp prunes all masked weights of layer {layer.name!r} to '
            f'one sparsity, but the plan gives {sorted(set(sparsities))}.')
      wrapper = tfmot.sparsity.keras.prune_low_magnitude(
          layer, pruning_schedule=self.polynomial_decay(sparsities[0]))
      self._wrappers.append(wrapper)
      return wrapper

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    if not wrapped.built:
      wrapped.build(model.input_shape)
    for wrapper in self._wrappers:
      # What UpdatePruningStep does before training; the wrappers count
      # from there and are checkpointed with their counts.
      wrapper.pruning_step.assign(0)
    return wrapped

  def build(self, masked_weights):
    super().build(masked_weights)
    by_weight = {}
    for wrapper in self._wrappers:
      for weight, mask, _ in wrapper.pruning_vars:
        by_weight[id(weight)] = mask
    tfmot_masks = [by_weight.get(id(mw.weight)) for mw in masked_weights]
    pruned = [s is not None for s in self._final_sparsities]
    if [m is not None for m in tfmot_masks] != pruned:
      raise ValueError(
          'tfmot_gmp prunes through TFMOT\'s wrappers: train the model that '
          'updater.wrap_model(model) returns (rigl_tf.train_lib does), with '
          'an optimizer around `model`.')
    self._set_tfmot_masks(tfmot_masks)

  def is_update_step(self, step):
    """Whether TFMOT pruned in this step's forward pass (its step + 1)."""
    return schedules.is_update_step(step + 1, self.begin_step,
                                    self.final_prune_step,
                                    self.update_frequency)

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    """Copies TFMOT's new masks into this library's (cross-replica)."""
    from rigl_tf import optimizers  # pylint: disable=g-import-not-at-top
    del dense_grads
    for mw, tfmot_mask in zip(masked_weights, self._tfmot_masks):
      if tfmot_mask is not None:
        strategy.extended.update(
            mw.mask, _copy_mask,
            args=(tfmot_mask, mw.weight,
                  optimizers.get_slot_variables(optimizer, mw.weight)),
            group=False)
    self.record_ever_active(strategy)
    # The row of TFMOT's step.
    self._record_counts(masked_weights, step + 1)

  def _mask_change_steps(self):
    # TFMOT's pruning at step s already shapes the optimizer's step s - 1.
    return self.pruning_steps() - 1


def _copy_mask(mask, tfmot_mask, weight, slots):
  """This library's mask := TFMOT's; pruned weights and slots zeroed."""
  new_mask = tf.cast(tfmot_mask, mask.dtype)
  mask.assign(new_mask, read_value=False)
  weight.assign(weight * tf.cast(new_mask, weight.dtype), read_value=False)
  for slot in slots:
    slot.assign(slot * tf.cast(new_mask, slot.dtype), read_value=False)
  return new_mask


@updaters.register('snip')
@gin.configurable
class SNIP(updaters.MaskUpdater):
  """SNIP (Lee et al. 2019): prune once at step 0 by |g · w|.

  The masks start dense. On the first `num_batches` steps the weights are
  not updated; the dense gradients (all-reduced, summed over those steps)
  score every weight by |g · w|, and each layer keeps its budget from the
  distribution (`scope='layerwise'`) or the pooled layers share theirs by
  one global ranking (`scope='global'`, as in the SNIP paper). Then the
  masks are fixed.
  """

  skip_weight_update_on_mask_update = True

  def __init__(self, scope='layerwise', num_batches=1, seed=None, name=None):
    """Configures SNIP (gin binds these on `SNIP`).

    Args:
      scope: 'layerwise' or 'global'.
      num_batches: batches whose gradients are summed into the score.
      seed: seed of the stateless RNG (ties); None: the run's seed.
      name: module name.

    Raises:
      ValueError: for an invalid value.
    """
    super().__init__(seed=seed, name=name)
    _check_choice(scope, SCOPES, 'SNIP scope')
    if num_batches < 1:
      raise ValueError(f'num_batches must be >= 1, got {num_batches}.')
    self.scope = scope
    self.num_batches = int(num_batches)
    self._budget = None
    self._in_pool = None
    self._grad_sum = []

  def init_masks(self, model, plan, seed=0, method='random',
                 train_steps=None):
    """Dense masks; remembers every layer's budget."""
    from rigl_tf import layers  # pylint: disable=g-import-not-at-top
    del train_steps, method
    weights = layers.get_masked_weights(model)
    masks_lib.init_masks(weights, 0.0, seed=seed)
    self._budget = np.array([
        masks_lib.distributions.num_ones(plan.final[mw.name], mw.size)
        for mw in weights
    ], np.int64)
    self._in_pool = np.array(
        [self.scope == 'global' and mw.name not in plan.fixed
         for mw in weights], bool)

  def build(self, masked_weights):
    if self._budget is None:
      raise ValueError(
          'SNIP keeps the budget of a SparsityPlan: call updater.init_masks('
          'model, masks.sparsity_plan(model, sparsity, ...)) before '
          'training.')
    super().build(masked_weights)
    if self.num_batches > 1:
      for mw in self._masked_weights:
        self._grad_sum.append(updaters.state_variable(
            lambda w=mw.weight: tf.zeros(w.shape, tf.float32),
            name=f'snip_grad_sum_{mw.index}'))

  def is_update_step(self, step):
    if isinstance(step, int):
      return step < self.num_batches
    return tf.cast(step, tf.int64) < self.num_batches

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    grads = list(dense_grads)
    if self._grad_sum:
      for total, grad in zip(self._grad_sum, grads):
        strategy.extended.update(total, _add_assign, args=(grad,),
                                 group=False)
      grads = self._grad_sum

    def prune():
      self._prune(strategy, masked_weights, grads, step, optimizer)
      return tf.constant(0)

    tf.__internal__.smart_cond.smart_cond(
        tf.equal(tf.cast(step, tf.int64), self.num_batches - 1), prune,
        lambda: tf.constant(0))

  def _prune(self, strategy, masked_weights, grads, step, optimizer):
    """Keeps the budget of largest |g · w| per layer (cross-replica)."""
    from rigl_tf import optimizers  # pylint: disable=g-import-not-at-top
    keep = tf.constant(self._budget, tf.int32)
    if self._in_pool.any():
      pool = [i for i, p in enumerate(self._in_pool) if p]
      # The all-reduced gradients are the same on every replica: rank the
      # first replica's copy.
      scores = [
          _snip_score(masked_weights[i].weight,
                      strategy.experimental_local_results(grads[i])[0])
          for i in pool
      ]
      counts = masks_lib.global_top_n_counts(
          scores, int(self._budget[self._in_pool].sum()),
          updaters.layer_key(self.seed, len(masked_weights), step,
                             _GLOBAL_STREAM))
      keep = tf.tensor_scatter_nd_update(keep, [[i] for i in pool], counts)
    for i, mw in enumerate(masked_weights):
      strategy.extended.update(
          mw.mask, _snip_layer,
          args=(mw.weight, grads[i], keep[i],
                updaters.layer_key(self.seed, mw.index, step, 1),
                optimizers.get_slot_variables(optimizer, mw.weight),
                self._ever_active[i]),
          group=False)


def _snip_score(weight, grad):
  return tf.abs(tf.cast(grad, tf.float32) * tf.cast(weight, tf.float32))


def _add_assign(total, grad):
  return total.assign_add(tf.cast(grad, total.dtype), read_value=False)


def _snip_layer(mask, weight, grad, n_keep, key, slots, ever):
  """SNIP's mask of one layer on one device (inside extended.update)."""
  new_mask = masks_lib.top_n_mask_random_ties(_snip_score(weight, grad),
                                              n_keep, key)
  weight.assign(weight * tf.cast(new_mask, weight.dtype), read_value=False)
  mask.assign(tf.cast(new_mask, mask.dtype), read_value=False)
  for slot in slots:
    slot.assign(slot * tf.cast(new_mask, slot.dtype), read_value=False)
  # The dense step-0 masks only scored: no weight was trained there.
  ever.assign(tf.cast(new_mask, ever.dtype), read_value=False)
  return n_keep

