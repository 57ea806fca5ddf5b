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
"""The drop/grow engine of dynamic sparse training (SET, SNFS, RigL, GraNet).

One engine does every drop and grow of the library. Per layer at an update
step, it keeps the n_active - n_drop active weights of largest |w| and grows
n_grow positions by a method's score, in one XLA-compiled function
(`drop_and_grow`), resets the optimizer slots of dropped and grown positions
and ORs the new mask into the "ever active" one. `DropGrowUpdater` runs it on
every layer with counts from the annealed drop fraction (optionally
redistributed across layers, `redistribution.redistribute_counts`); its
subclasses (`methods.dst`) differ only in their grow score, and the gradual
methods (`methods.pruning`, `methods.granet`) only in the counts they pass.
With a structure (`rigl_tf.structure`), both selections run within each
row of a layer (an output unit, or a group of M of its inputs).
"""

from absl import logging
import numpy as np
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import rng
from rigl_tf import schedules
from rigl_tf import slots as slots_lib
from rigl_tf import structure as structure_lib
from rigl_tf import topk
from rigl_tf.methods import base
from rigl_tf.methods import redistribution

GROW_INITS = ('zeros', 'random_normal', 'initial_dist')
REDISTRIBUTIONS = ('none', 'momentum', 'magnitude', 'nonzeros')

# Streams of the per-(seed, step, layer) stateless RNG.
_DROP_GROW_STREAM = 1
_GROW_SCORE_STREAM = 2


def _drop_and_grow(mask, weight, grow_score, n_drop, n_grow, key, grow_std,
                   layout=None, ablation=None):
  """Drop/grow of one layer: the XLA-compilable core of `DropGrowUpdater`.

  Keeps the n_active - n_drop active weights with the largest |w|, then
  activates the n_grow positions not kept with the largest `grow_score`.
  Exact ties are broken by a keyed pseudo-random order of positions
  (`topk.top_n_rows_random_ties`). A position dropped and grown again keeps
  its value; a newly grown one starts at `grow_std` * N(0, 1) (0 for
  `grow_std` = 0). Each selection finds its threshold by counting, with no
  sort, and takes the (dynamic) counts as tensors: shapes stay static.

  With a `structure.Layout`, both selections run within each of its rows
  (an output unit, or a group of M inputs of one), and every row grows as
  many as it dropped, so a structured mask keeps its per-row counts: the
  layer's n_drop is spread over the rows, floor(n_drop / rows) each and one
  more in the n_drop mod rows rows whose smallest active |w| are the
  smallest (`structure.spread_over_rows`). n_grow must then equal n_drop.

  With `ablation` = (threshold, budget) as well (SRigL's neuron ablation,
  constant fan-in only), a unit with fewer than threshold · k salient
  weights (those an unstructured update of the layer would keep or grow) is
  removed: all its weights dropped, for good. The live units then share the
  layer's budget: each holds min(n_in, budget // live units).

  Args:
    mask: 0/1 tensor, the current mask.
    weight: the weight, same shape (masked positions hold 0).
    grow_score: float tensor, same shape; larger grows first.
    n_drop: int32 scalar, 0 <= n_drop <= number of ones in `mask`.
    n_grow: int32 scalar, 0 <= n_grow <= size - (n_active - n_drop) (with
      a layout: n_drop).
    key: int64 [2], stateless RNG key of this layer and step.
    grow_std: float32 scalar, std of the initial values of new weights.
    layout: optional `structure.Layout` (a Python value: part of the
      compiled function's signature).
    ablation: optional (threshold, budget) Python values, with a layout.

  Returns:
    (new_mask, new_weight, slot_factor, num_new): the mask and weight after
    the update (dtypes of the inputs), the 0/1 float32 factor that zeroes
    the optimizer slots of new and dropped positions, and the int64 number
    of newly active positions.
  """
  shape = tf.shape(weight)

  def to_rows(tensor):  # The whole layer is one row when unstructured.
    tensor = tf.cast(tensor, tf.float32)
    return (tf.reshape(tensor, [1, -1]) if layout is None
            else layout.to_rows(tensor))

  def from_rows(rows):
    return (tf.reshape(rows, shape) if layout is None
            else layout.from_rows(rows))

  old, values, score = to_rows(mask), to_rows(weight), to_rows(grow_score)
  drop_key, grow_key, init_key = tf.unstack(
      tf.random.experimental.stateless_split(key, num=3))
  magnitude = tf.where(old > 0, tf.abs(values), -1.0)
  counts = tf.cast(tf.reduce_sum(old, 1), tf.int32)
  if layout is None:
    n_keep, n_grow_rows = counts - n_drop, n_grow
  else:
    live = counts > 0
    target = counts
    if ablation is not None:
      threshold, budget = ablation
      live = structure_lib.live_units(magnitude, score, n_drop, live, counts,
                                      threshold, key)
      n_live = tf.reduce_sum(tf.cast(live, tf.int32))
      target = tf.fill(tf.shape(counts), tf.minimum(
          layout.size, budget // tf.maximum(n_live, 1)))
    n_drop_rows = structure_lib.spread_over_rows(magnitude, n_drop, live,
                                                 key)
    n_keep = tf.where(live, counts - n_drop_rows, 0)
    n_grow_rows = tf.where(live, target, 0) - n_keep
  # Inactive positions score below every |w|: they are never kept.
  kept = topk.top_n_rows_random_ties(magnitude, n_keep, drop_key)
  grown = topk.top_n_rows_random_ties(
      tf.where(kept > 0, -float('inf'), score), n_grow_rows, grow_key)
  new_mask = kept + grown
  new = grown * (1.0 - old)
  # Drawn only when used: XLA's stateless RNG is slow on CPU.
  init = tf.cond(
      grow_std > 0,
      lambda: grow_std * tf.random.stateless_normal(tf.shape(values),
                                                    seed=init_key),
      lambda: tf.zeros_like(values))
  new_values = tf.where(new > 0, init, values) * new_mask
  return (tf.cast(from_rows(new_mask), mask.dtype),
          tf.cast(from_rows(new_values), weight.dtype),
          from_rows(new_mask - new),
          tf.cast(tf.reduce_sum(new), tf.int64))


# Compiled with XLA everywhere (TPUs need it; jit-compiled train steps
# include it). The selection counts instead of sorting (`topk.top_n_by_keys`),
# which XLA fuses well: a compiled layer update is a few times faster than
# the same ops without XLA on CPU (benchmarks/update_cost.py --layer).
drop_and_grow = tf.function(_drop_and_grow, jit_compile=True)


def _drop_grow_and_reset(mask, weight, grow_score, n_drop, n_grow, key,
                         grow_std, slots, fresh, ever, layout=None,
                         ablation=None):
  """`_drop_and_grow`, then the new slot and "ever active" values.

  One compiled function for all of a layer's update: the slot resets and
  the OR into the ever-active mask are elementwise passes that XLA fuses,
  where TensorFlow's ops would run (and allocate) one by one.

  Args:
    mask, weight, grow_score, n_drop, n_grow, key, grow_std, layout,
      ablation: as for `_drop_and_grow`.
    slots: list of the layer's optimizer slot values.
    fresh: list of floats, a fresh slot's value for each.
    ever: the layer's "ever active" 0/1 values.

  Returns:
    (new_mask, new_weight, new_slots, new_ever, num_new).
  """
  new_mask, new_weight, slot_factor, num_new = _drop_and_grow(
      mask, weight, grow_score, n_drop, n_grow, key, grow_std, layout,
      ablation)
  new_slots = [slots_lib.fresh_where_dropped(slot, slot_factor, value)
               for slot, value in zip(slots, fresh)]
  return (new_mask, new_weight, new_slots, slots_lib.ever_or(ever, new_mask),
          num_new)


_drop_grow_and_reset_xla = tf.function(_drop_grow_and_reset, jit_compile=True)


class DropGrowUpdater(base.MaskUpdater):
  """The drop/grow engine of dynamic sparse training (SET, SNFS, RigL).

  At an update step t (`schedules.is_update_step`), per layer with n_active
  ones: n_drop = floor(n_active · α_t), α_t the annealed drop fraction. Keep
  the n_active - n_drop active weights with the largest |w|; among the
  positions not kept, grow the n_drop with the largest `grow_scores`. A
  position dropped and grown again keeps its value; new ones start at 0 (or
  as `grow_init` says), and their optimizer slots (momentum, Adam m/v) are
  reset to a fresh slot's value, 0 for most (those of dropped positions
  too; `slots.get_slot_resets`). The active count of every
  layer is preserved exactly; with `redistribution`, only the total count
  is, the layers' shares of the grown weights following a statistic.

  Subclasses only define `grow_scores`.
  """

  # Whether the updater keeps an EMA of the dense gradients (SNFS's score).
  uses_grad_ema = False
  # `drop_and_grow_layers` writes the weights and resets the slots of every
  # masked position; subclasses whose `update_masks` changes masks any other
  # way set this back to False.
  update_leaves_masked_state = True

  def __init__(self,
               drop_fraction=0.3,
               drop_fraction_anneal='cosine',
               update_frequency=100,
               begin_step=0,
               end_step=None,
               grow_init='zeros',
               redistribution='none',
               grad_ema_decay=0.9,
               ablation_threshold=0.0,
               skip_weight_update_on_mask_update=None,
               seed=None,
               name=None):
    """Configures the updater (gin binds these on the subclass's name).

    Args:
      drop_fraction: α, the fraction of active weights dropped per update
        (before annealing).
      drop_fraction_anneal: 'constant', 'cosine' or 'exponential[_<k>]'
        (see `schedules`).
      update_frequency: ΔT, steps between mask updates.
      begin_step: first step that updates masks.
      end_step: last step that may update masks; None (default): 75% of
        the run's `train_steps` (RigL's default) once `configure_run` is
        told them, else never stop; < 0: until training ends (an annealed drop
        fraction then stays at α). The anneal's horizon is end_step.
      grow_init: value of newly grown weights: 'zeros'; 'random_normal'
        (normal with the std of the layer's dense initial values, recorded
        by `masks.init_masks` before masking: RigL's masked variables keep
        those values and it draws with their std); 'initial_dist' (normal
        with the std of the layer's active weights when the updater is
        built, i.e. at init).
      redistribution: 'none'; or share the grown weights between layers in
        proportion to the mean |gradient EMA| ('momentum', SNFS), the mean
        |w| ('magnitude') of the active weights, or the number of non-zero
        weights ('nonzeros').
      grad_ema_decay: decay of the dense-gradient EMA (SNFS's momentum; also
        used by redistribution='momentum').
      ablation_threshold: γ of SRigL's neuron ablation, with
        train_eval.structure = 'constant_fan_in': at an update, a unit with
        fewer than γ·k salient weights is removed and the others share its
        budget (SRigL uses 0.3); 0 (default): no ablation.
      skip_weight_update_on_mask_update: skip the weight update on mask
        update steps; None: the method's default (True for RigL).
      seed: seed of the stateless RNG (tie breaks, SET growth, grow_init);
        None: the run's seed (`train_eval.seed`, via `configure_run`).
      name: module name.

    Raises:
      ValueError: for an invalid value.
    """
    super().__init__(seed=seed, name=name)
    checks.check_range(drop_fraction, 'drop_fraction', 0.0, 1.0)
    schedules.parse_anneal(drop_fraction_anneal)
    checks.check_range(update_frequency, 'update_frequency', 1)
    checks.check_choice(grow_init, GROW_INITS, 'grow_init')
    checks.check_choice(redistribution, REDISTRIBUTIONS, 'redistribution')
    checks.check_range(grad_ema_decay, 'grad_ema_decay', 0.0, 1.0,
                     high_open=True)
    checks.check_range(ablation_threshold, 'ablation_threshold', 0.0, 1.0)
    self.ablation_threshold = float(ablation_threshold)
    self._budgets = {}
    self.drop_fraction = float(drop_fraction)
    self.drop_fraction_anneal = drop_fraction_anneal
    self.update_frequency = int(update_frequency)
    self.begin_step = int(begin_step)
    self._end_step_given = end_step is not None
    self.end_step = -1 if end_step is None else int(end_step)
    self.grow_init = grow_init
    self.redistribution = redistribution
    self.grad_ema_decay = float(grad_ema_decay)
    if skip_weight_update_on_mask_update is not None:
      self.skip_weight_update_on_mask_update = bool(
          skip_weight_update_on_mask_update)
    self._grad_ema = []
    self._initial_std = []

  def configure_run(self, train_steps=None, seed=None):
    """Also sets end_step to 75% of `train_steps` unless it was given."""
    super().configure_run(train_steps=train_steps, seed=seed)
    if train_steps is not None and not self._end_step_given:
      self.end_step = int(0.75 * train_steps)
      logging.info('%s: mask updates end at step %d (75%% of %d).',
                   type(self).__name__, self.end_step, train_steps)

  def stretch_steps(self, multiplier):
    """Scales begin_step and a given end_step (< 0: until the end)."""
    self.begin_step = int(self.begin_step * multiplier)
    if self.end_step is not None and self.end_step > 0:
      self.end_step = int(self.end_step * multiplier)

  @property
  def keeps_grad_ema(self):
    """Whether a dense-gradient EMA is kept (SNFS, momentum redistribution)."""
    return self.uses_grad_ema or self.redistribution == 'momentum'

  def build(self, masked_weights):
    super().build(masked_weights)
    if self.end_step < 0 and self.drop_fraction_anneal != 'constant':
      logging.warning(
          '%s: drop_fraction_anneal=%r with end_step < 0 has no horizon to '
          'anneal over; the drop fraction stays at %s. Set end_step (RigL '
          'stops updating masks at 75%% of training).', type(self).__name__,
          self.drop_fraction_anneal, self.drop_fraction)
    self._current_drop_fraction = base.state_variable(
        float(self.drop_fraction_at(self.begin_step)), name='drop_fraction',
        dtype=tf.float32)
    self._connections_changed = base.state_variable(
        tf.constant(0, tf.int64), name='connections_changed')
    self._layer_connections_changed = base.state_variable(
        tf.zeros([len(self._masked_weights)], tf.int64),
        name='layer_connections_changed')
    for mw in self._masked_weights:
      if self.keeps_grad_ema:
        self._grad_ema.append(
            base.state_variable(
                lambda w=mw.weight: tf.zeros(w.shape, tf.float32),
                name=f'grad_ema_{mw.index}'))
      if self.grow_init != 'zeros':
        self._initial_std.append(
            base.state_variable(lambda mw=mw: self._grow_std_at_build(mw),
                           name=f'initial_std_{mw.index}'))

  def set_structure(self, plan):
    """Also refuses redistribution with a structure.

    A structured layer keeps the same count in every row, so the layers
    cannot trade grown weights.
    """
    if self.ablation_threshold > 0 and (
        plan.structure.kind != structure_lib.CONSTANT_FAN_IN):
      raise ValueError(
          f'{type(self).__name__}.ablation_threshold removes output units of '
          "constant-fan-in masks: set train_eval.structure = "
          "'constant_fan_in', or ablation_threshold = 0.")
    if plan.structure.structured and self.redistribution != 'none':
      raise ValueError(
          f'{type(self).__name__}.redistribution = {self.redistribution!r} '
          f'moves weights between layers, which a structured mask '
          f'({plan.structure.name}) cannot take: set redistribution to '
          "'none' or train_eval.structure = 'unstructured'.")
    super().set_structure(plan)
    self._budgets = {name: layout.num_ones(plan.final[name])
                     for name, layout in self.layouts.items()}

  @property
  def _structure_of_index(self):
    """`MaskedWeight.index` -> (its `structure.Layout`, ablation or None)."""
    result = {}
    for mw in self._masked_weights:
      if mw.name in self.layouts:
        ablation = None
        if self.ablation_threshold > 0:
          ablation = (self.ablation_threshold, self._budgets[mw.name])
        result[mw.index] = (self.layouts[mw.name], ablation)
    return result

  def expected_row_counts(self, layout, counts, sparsity):
    """With neuron ablation: 0 for ablated units, the live units' share."""
    if self.ablation_threshold <= 0:
      return super().expected_row_counts(layout, counts, sparsity)
    live = counts > 0
    share = min(layout.size,
                layout.num_ones(sparsity) // max(int(live.sum()), 1))
    return np.where(live, share, 0)

  def _grow_std_at_build(self, mw):
    """Std of newly grown weights of `mw` (grow_init != 'zeros')."""
    if self.grow_init == 'random_normal':
      std = mw.layer.dense_init_std(mw.weight)
      if std is not None:
        return tf.constant(std, tf.float32)
      # Masks drawn without init_masks: the active weights are a uniform
      # sample of the dense initial values.
    return _active_std(mw.weight, mw.mask)

  @property
  def current_drop_fraction(self):
    """α_t of the last update (α at `begin_step` before the first)."""
    return self._current_drop_fraction

  @property
  def connections_changed(self):
    """Newly grown connections in the last update, all layers together."""
    return self._connections_changed

  @property
  def layer_connections_changed(self):
    """int64 [num masked weights]: newly grown per layer, last update."""
    return self._layer_connections_changed

  @property
  def grad_ema(self):
    """The dense-gradient EMA variables (empty unless `keeps_grad_ema`)."""
    return list(self._grad_ema)

  def is_update_step(self, step):
    return schedules.is_update_step(step, self.begin_step, self.end_step,
                                    self.update_frequency)

  def training_cost_options(self, train_steps, costs=None):
    # RigL's formula: one dense-gradient step every update_frequency steps.
    del train_steps, costs
    return {'update_frequency': self.update_frequency}

  def drop_fraction_at(self, step):
    """α_t (a Python float for a Python step, else a float32 tensor)."""
    return schedules.drop_fraction_at(step, self.drop_fraction,
                                      self.drop_fraction_anneal,
                                      self.begin_step, self.end_step)

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    """Per-position grow score (larger grows first); runs per device.

    Args:
      weight: the (per-device) weight.
      dense_grad: its all-reduced dense gradient.
      grad_ema: its dense-gradient EMA (None unless `keeps_grad_ema`).
      key: int64 [2] stateless RNG key of this layer and step.

    Returns:
      A float tensor shaped like `weight`.
    """
    raise NotImplementedError

  def on_step(self, strategy, masked_weights, dense_grads, step):
    """Updates the dense-gradient EMA when one is kept."""
    del masked_weights, step
    for ema, grad in zip(self._grad_ema, dense_grads):
      strategy.extended.update(
          ema, _ema_update, args=(grad, self.grad_ema_decay), group=False)

  def _layer_statistics(self):
    """Per-layer redistribution statistic, float32 [L] (cross-replica)."""
    stats = []
    for i, mw in enumerate(self._masked_weights):
      mask = tf.cast(mw.mask, tf.float32)
      n_active = tf.maximum(tf.reduce_sum(mask), 1.0)
      if self.redistribution == 'momentum':
        stats.append(tf.reduce_sum(tf.abs(self._grad_ema[i]) * mask) /
                     n_active)
      elif self.redistribution == 'magnitude':
        stats.append(
            tf.reduce_sum(tf.abs(tf.cast(mw.weight, tf.float32)) * mask) /
            n_active)
      else:  # 'nonzeros'
        stats.append(
            tf.cast(tf.math.count_nonzero(mw.weight), tf.float32))
    return tf.stack(stats)

  def grow_counts(self, n_active, n_drop):
    """Per-layer numbers of weights to grow (int32 [L]; cross-replica).

    Args:
      n_active: int32 [L], active weights per layer before the update.
      n_drop: int32 [L], weights dropped per layer.

    Returns:
      `n_drop` without redistribution; otherwise the redistributed budgets
      (same total, none above the positions its layer has free).
    """
    if self.redistribution == 'none':
      return n_drop
    sizes = tf.constant([mw.size for mw in self._masked_weights], tf.int32)
    capacities = sizes - (n_active - n_drop)
    counts = redistribution.redistribute_counts(self._layer_statistics(),
                                 tf.reduce_sum(n_drop), capacities)
    return tf.cast(counts, tf.int32)

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    drop_fraction = tf.cast(self.drop_fraction_at(step), tf.float32)
    n_active = tf.stack([
        tf.cast(tf.reduce_sum(tf.cast(mw.mask, tf.float32)), tf.int32)
        for mw in masked_weights
    ])
    n_drop = tf.cast(
        tf.floor(tf.cast(n_active, tf.float32) * drop_fraction), tf.int32)
    n_grow = self.grow_counts(n_active, n_drop)
    self.drop_and_grow_layers(strategy, masked_weights, dense_grads, step,
                              optimizer, n_drop, n_grow)
    self._current_drop_fraction.assign(drop_fraction, read_value=False)

  def drop_and_grow_layers(self, strategy, masked_weights, dense_grads, step,
                           optimizer, n_drop, n_grow):
    """Runs the engine on every layer with the given counts (cross-replica).

    Per layer, keeps the n_active - n_drop[i] largest |w| and grows
    n_grow[i] positions by `grow_scores`; resets slots, records the "ever
    active" masks and the connections changed. Subclasses that choose the
    counts differently (GMP, GraNet) call it from `update_masks`.

    Args:
      strategy: the current `tf.distribute.Strategy`.
      masked_weights: list of `MaskedWeight`.
      dense_grads: their all-reduced dense gradients.
      step: scalar int tensor, the step being taken.
      optimizer: the wrapped Keras optimizer (for its slots).
      n_drop: int32 [L], weights dropped per layer.
      n_grow: int32 [L], weights grown per layer.
    """
    changed = []
    for i, (mw, grad) in enumerate(zip(masked_weights, dense_grads)):
      inputs = {
          'weight': mw.weight,
          'grad': grad,
          'slots': slots_lib.get_slot_resets(optimizer, mw.weight),
          'ever': self._ever_active[i],
      }
      if self._grad_ema:
        inputs['ema'] = self._grad_ema[i]
      if self._initial_std:
        inputs['initial_std'] = self._initial_std[i]
      result = strategy.extended.update(
          mw.mask, self._update_layer,
          args=(n_drop[i], n_grow[i], mw.index, step), kwargs=inputs,
          group=False)
      # Every replica computed the same count: keep the first one's.
      changed.append(
          tf.nest.flatten(strategy.experimental_local_results(result))[0])
    changed = tf.stack(changed)
    self._layer_connections_changed.assign(changed, read_value=False)
    self._connections_changed.assign(tf.reduce_sum(changed), read_value=False)

  def _update_layer(self, mask, n_drop, n_grow, index, step, weight, grad,
                    slots, ever, ema=None, initial_std=None):
    """Drop/grow of one layer on one device (inside extended.update)."""
    score = self.grow_scores(
        weight, grad, ema,
        rng.stateless_key(self.seed, index, step, _GROW_SCORE_STREAM))
    if initial_std is not None:
      grow_std = tf.cast(initial_std, tf.float32)
    else:
      grow_std = tf.constant(0.0)
    # Values, not variables: given the per-device variables as arguments,
    # the compiled function was seen to read those of an earlier model that
    # had been traced with the same shapes.
    # Fresh slots (0, or e.g. Adagrad's initial accumulator) for new and
    # dropped positions.
    slot_variables, fresh = slots
    new_mask, new_weight, new_slots, new_ever, num_new = (
        _drop_grow_and_reset_xla(
            tf.convert_to_tensor(mask), tf.convert_to_tensor(weight), score,
            n_drop, n_grow,
            rng.stateless_key(self.seed, index, step, _DROP_GROW_STREAM),
            grow_std,
            [tf.convert_to_tensor(slot) for slot in slot_variables],
            list(fresh), tf.convert_to_tensor(ever),
            *self._structure_of_index.get(index, (None, None))))
    weight.assign(new_weight, read_value=False)
    mask.assign(new_mask, read_value=False)
    for slot, value in zip(slot_variables, new_slots):
      slot.assign(value, read_value=False)
    ever.assign(new_ever, read_value=False)
    return num_new

  def summaries(self):
    """Base summaries plus `drop_fraction` and `connections_changed`."""
    result = super().summaries()
    if self._masked_weights:
      result['drop_fraction'] = tf.identity(self._current_drop_fraction)
      result['connections_changed'] = tf.identity(self._connections_changed)
    return result


def _ema_update(ema, grad, decay):
  """ema <- decay · ema + (1 - decay) · grad, as ema - (1 - decay)(ema - g).

  Two passes over the layer (a subtraction and one in-place fused update)
  instead of four: it runs on every step.
  """
  delta = ema - tf.cast(grad, ema.dtype)
  return tf.raw_ops.ResourceApplyGradientDescent(
      var=ema.handle, alpha=tf.cast(1.0 - decay, ema.dtype), delta=delta)


def _active_std(weight, mask):
  """Std of the active entries of `weight` (0 when none is active)."""
  mask = tf.cast(mask, tf.float32)
  values = tf.cast(weight, tf.float32)
  count = tf.maximum(tf.reduce_sum(mask), 1.0)
  mean = tf.reduce_sum(values * mask) / count
  variance = tf.reduce_sum(tf.square(values - mean) * mask) / count
  return tf.sqrt(variance)
