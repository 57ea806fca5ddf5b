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
"""Mask updaters: what a sparse training method does to the masks.

A `MaskUpdater` is plugged into `SparseOptimizer`. The optimizer masks the
gradients, calls `on_step` (every step), applies the wrapped optimizer
(re-masking the weights it could move: `optimizers.needs_remasking`), and, on
the steps where `is_update_step(step)` is true, calls `update_masks` (which
leaves dropped weights at 0); both hooks run in cross-replica context with the
all-reduced dense gradients. A method is a subclass that says when and how
masks change, and what a training step costs (`training_flops_per_step`,
which `rigl_tf.flops` looks up); a registry maps method names to classes,
the one registry of methods, and gin configures them. The trainer tells an
updater the run's length and seed (`configure_run`) before it is built, and
its training steps call the model `wrap_model` returns (the model itself,
except for a method that acts through layer wrappers of its own, such as
`tfmot_gmp` through TFMOT's).

This module holds

* the base class, which never changes a mask (`static`) and keeps the
  "ever active" masks behind the ITOP rate (in-time over-parameterisation:
  the fraction of weights that were active at some point);
* `dense` (no masks at all);
* `DropGrowUpdater`, the one drop/grow engine of dynamic sparse training,
  and its subclasses, which differ only in the score that picks the weights
  to grow (as in jaxpruner): `set` (random), `snfs` (|EMA of the dense
  gradients|) and `rigl` (|dense gradient|).

Everything that writes a mask runs per device inside
`strategy.extended.update`, from inputs that are identical on every replica
(all-reduced gradients, mirrored variables, stateless RNG keyed by (seed,
step, layer index)), so all replicas compute the same masks.
"""

from absl import logging
import gin
import tensorflow as tf

from rigl_tf import masks as masks_lib
from rigl_tf import schedules

_REGISTRY = {}

GROW_INITS = ('zeros', 'random_normal', 'initial_dist')
REDISTRIBUTIONS = ('none', 'momentum', 'magnitude', 'nonzeros')

# Streams of the per-(seed, step, layer) stateless RNG.
_DROP_GROW_STREAM = 1
_GROW_SCORE_STREAM = 2


def register(name):
  """Class decorator: registers a `MaskUpdater` subclass under `name`."""

  def decorator(cls):
    if name in _REGISTRY:
      raise ValueError(f'Method {name!r} is registered twice.')
    _REGISTRY[name] = cls
    cls.method_name = name
    return cls

  return decorator


def methods():
  """Registered method names, sorted."""
  return sorted(_REGISTRY)


def get_updater_class(method):
  """The `MaskUpdater` class registered as `method`.

  Args:
    method: a registered name ('rigl'), in any case ('RigL'), or the class
      name gin configures ('RigL', 'MaskUpdater' for 'static').

  Raises:
    ValueError: for an unknown method name.
  """
  if method not in _REGISTRY:
    by_class_name = {cls.__name__: name for name, cls in _REGISTRY.items()}
    method = by_class_name.get(method, str(method).lower())
  if method not in _REGISTRY:
    raise ValueError(f'Unknown sparse training method {method!r}; choose one '
                     f'of: {", ".join(methods())}.')
  return _REGISTRY[method]


def get_updater(method, **kwargs):
  """Instantiates the updater registered as `method` (gin fills the rest)."""
  return get_updater_class(method)(**kwargs)


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


def layer_key(seed, index, step, stream):
  """Stateless RNG key of one layer at one step (int64, shape [2])."""
  return tf.stack([
      tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(index, tf.int64),
      tf.cast(step, tf.int64) * 8 + stream
  ])


@register('static')
@gin.configurable
class MaskUpdater(tf.Module):
  """Base updater: fixed masks (RigL's "static"/"scratch" baseline).

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
    masks_lib.init_masks(model, plan.final, seed=seed, method=method)

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
    sparse weight gradients, 3 f_S. `rigl_tf.flops` looks the rule up here
    (the one registry of methods); a new method states its own.

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


def ever_or(ever, mask):
  """The "ever active" 0/1 values OR the 0/1 `mask` (in `ever`'s dtype)."""
  return tf.maximum(ever, tf.cast(mask, ever.dtype))


def fresh_where_dropped(slot, keep, fresh):
  """`slot` where `keep` is 1, a fresh slot's value `fresh` where it is 0."""
  keep = tf.cast(keep, slot.dtype)
  return slot * keep + fresh * (1 - keep)


def _or_assign(ever, mask):
  return ever.assign(ever_or(ever, mask), read_value=False)


@register('dense')
@gin.configurable
class DenseTraining(MaskUpdater):
  """Dense training: the model is not sparsified (the reference baseline)."""

  sparse = False

  @classmethod
  def training_flops_per_step(cls, costs):
    """Dense training: 3 f_D (forward, input and weight gradients)."""
    return 3.0 * costs.f_dense


def _drop_and_grow(mask, weight, grow_score, n_drop, n_grow, key, grow_std):
  """Drop/grow of one layer: the XLA-compilable core of `DropGrowUpdater`.

  Keeps the n_active - n_drop active weights with the largest |w|, then
  activates the n_grow positions not kept with the largest `grow_score`.
  Exact ties are broken by a keyed pseudo-random order of positions
  (`masks.top_n_mask_random_ties`). A position dropped and grown again keeps
  its value; a newly grown one starts at `grow_std` * N(0, 1) (0 for
  `grow_std` = 0). Each selection finds its threshold by counting, with no
  sort, and takes the (dynamic) counts as tensors: shapes stay static.

  Args:
    mask: 0/1 tensor, the current mask.
    weight: the weight, same shape (masked positions hold 0).
    grow_score: float tensor, same shape; larger grows first.
    n_drop: int32 scalar, 0 <= n_drop <= number of ones in `mask`.
    n_grow: int32 scalar, 0 <= n_grow <= size - (n_active - n_drop).
    key: int64 [2], stateless RNG key of this layer and step.
    grow_std: float32 scalar, std of the initial values of new weights.

  Returns:
    (new_mask, new_weight, slot_factor, num_new): the mask and weight after
    the update (dtypes of the inputs), the 0/1 float32 factor that zeroes
    the optimizer slots of new and dropped positions, and the int64 number
    of newly active positions.
  """
  shape = tf.shape(weight)
  old = tf.reshape(tf.cast(mask, tf.float32), [-1])
  values = tf.reshape(tf.cast(weight, tf.float32), [-1])
  score = tf.reshape(tf.cast(grow_score, tf.float32), [-1])
  drop_key, grow_key, init_key = tf.unstack(
      tf.random.experimental.stateless_split(key, num=3))
  n_keep = tf.cast(tf.reduce_sum(old), tf.int32) - n_drop
  # Inactive positions score below every |w|: they are never kept.
  kept = masks_lib.top_n_mask_random_ties(
      tf.where(old > 0, tf.abs(values), -1.0), n_keep, drop_key)
  grown = masks_lib.top_n_mask_random_ties(
      tf.where(kept > 0, -float('inf'), score), n_grow, grow_key)
  new_mask = kept + grown
  new = grown * (1.0 - old)
  # Drawn only when used: XLA's stateless RNG is slow on CPU (~90 ms for a
  # 784x300 layer).
  init = tf.cond(
      grow_std > 0,
      lambda: grow_std * tf.random.stateless_normal(tf.shape(values),
                                                    seed=init_key),
      lambda: tf.zeros_like(values))
  new_values = tf.where(new > 0, init, values) * new_mask
  return (tf.cast(tf.reshape(new_mask, shape), mask.dtype),
          tf.cast(tf.reshape(new_values, shape), weight.dtype),
          tf.reshape(new_mask - new, shape),
          tf.cast(tf.reduce_sum(new), tf.int64))


# Compiled with XLA everywhere (TPUs need it; jit-compiled train steps
# include it). The selection counts instead of sorting (`masks.top_n_by_keys`),
# which XLA fuses well: on a 2-core CPU a 784x300 layer takes about 3 ms
# compiled against 8 ms without XLA (the sort-based engine took 105 ms
# without and 260 ms with XLA; benchmarks/update_cost.py --layer).
drop_and_grow = tf.function(_drop_and_grow, jit_compile=True)


def _drop_grow_and_reset(mask, weight, grow_score, n_drop, n_grow, key,
                         grow_std, slots, fresh, ever):
  """`_drop_and_grow`, then the new slot and "ever active" values.

  One compiled function for all of a layer's update: the slot resets and
  the OR into the ever-active mask are elementwise passes that XLA fuses,
  where TensorFlow's ops would run (and allocate) one by one.

  Args:
    mask, weight, grow_score, n_drop, n_grow, key, grow_std: as for
      `_drop_and_grow`.
    slots: list of the layer's optimizer slot values.
    fresh: list of floats, a fresh slot's value for each.
    ever: the layer's "ever active" 0/1 values.

  Returns:
    (new_mask, new_weight, new_slots, new_ever, num_new).
  """
  new_mask, new_weight, slot_factor, num_new = _drop_and_grow(
      mask, weight, grow_score, n_drop, n_grow, key, grow_std)
  new_slots = [fresh_where_dropped(slot, slot_factor, value)
               for slot, value in zip(slots, fresh)]
  return new_mask, new_weight, new_slots, ever_or(ever, new_mask), num_new


_drop_grow_and_reset_xla = tf.function(_drop_grow_and_reset, jit_compile=True)


def redistribute_counts(scores, total, capacities):
  """Integer budgets proportional to `scores`, summing to `total` exactly.

  Sparsity redistribution of SNFS / GraNet (`calc_growth_redistribution`):
  the `total` weights to grow are shared between layers in proportion to a
  per-layer statistic, no layer above its capacity; what a full layer cannot
  take goes to the others in proportion to their statistics (water-filling).
  The real shares are rounded down, and the remainder goes to the largest
  fractional parts, so that the sum is `total` exactly. Layers whose scores
  are all zero (or NaN) share in proportion to their capacities.

  Args:
    scores: float [L], non-negative statistics.
    total: int scalar, 0 <= total <= sum(capacities).
    capacities: int [L], the most each layer may receive.

  Returns:
    int64 [L] budgets.
  """
  scores = tf.cast(scores, tf.float32)
  scores = tf.where(scores > 0, scores, 0.0)  # Also maps NaN to 0.
  caps = tf.cast(capacities, tf.int64)
  caps_f = tf.cast(caps, tf.float32)
  total = tf.cast(total, tf.int64)
  total_f = tf.cast(total, tf.float32)

  def shares(capped):
    free = tf.logical_not(capped)
    budget = total_f - tf.reduce_sum(tf.where(capped, caps_f, 0.0))
    weights = tf.where(free, scores, 0.0)
    weights = tf.where(
        tf.reduce_sum(weights) > 0, weights, tf.where(free, caps_f, 0.0))
    denom = tf.maximum(tf.reduce_sum(weights), 1e-30)
    return tf.where(capped, caps_f, budget * weights / denom)

  # Each pass caps at least one more layer, or changes nothing.
  capped = tf.while_loop(
      lambda capped: tf.constant(True),
      lambda capped: (tf.logical_or(capped, shares(capped) > caps_f),),
      (tf.zeros_like(scores, dtype=tf.bool),),
      maximum_iterations=tf.size(scores))[0]
  real = shares(capped)
  counts = tf.clip_by_value(
      tf.cast(tf.floor(real), tf.int64), tf.zeros_like(caps), caps)

  def fix(counts):
    rest = total - tf.reduce_sum(counts)
    add = rest > 0
    eligible = tf.where(add, counts < caps, counts > 0)
    fraction = real - tf.cast(counts, tf.float32)
    priority = tf.where(eligible, tf.where(add, fraction, -fraction),
                        -float('inf'))
    n = tf.minimum(tf.abs(rest),
                   tf.math.count_nonzero(eligible, dtype=tf.int64))
    pick = tf.cast(masks_lib.top_n_mask(priority, n), tf.int64)
    return (counts + tf.sign(rest) * pick,)

  # Float rounding leaves a remainder of at most a few units per layer.
  return tf.while_loop(
      lambda counts: tf.not_equal(tf.reduce_sum(counts), total), fix,
      (counts,), maximum_iterations=4 * tf.size(scores) + 8)[0]


class DropGrowUpdater(MaskUpdater):
  """The drop/grow engine of dynamic sparse training (SET, SNFS, RigL).

  At an update step t (`schedules.is_update_step`), per layer with n_active
  ones: n_drop = floor(n_active · α_t), α_t the annealed drop fraction. Keep
  the n_active - n_drop active weights with the largest |w|; among the
  positions not kept, grow the n_drop with the largest `grow_scores`. A
  position dropped and grown again keeps its value; new ones start at 0 (or
  as `grow_init` says), and their optimizer slots (momentum, Adam m/v) are
  reset to a fresh slot's value, 0 for most (those of dropped positions
  too; `optimizers.get_slot_resets`). The active count of every
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
        the run's `train_steps` (RigL's default) once `set_train_steps` is
        called, else never stop; < 0: until training ends (an annealed drop
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
      skip_weight_update_on_mask_update: skip the weight update on mask
        update steps; None: the method's default (True for RigL).
      seed: seed of the stateless RNG (tie breaks, SET growth, grow_init);
        None: the run's seed (`train_eval.seed`, via `configure_run`).
      name: module name.

    Raises:
      ValueError: for an invalid value.
    """
    super().__init__(seed=seed, name=name)
    if not 0.0 <= drop_fraction <= 1.0:
      raise ValueError(f'drop_fraction must be in [0, 1], got {drop_fraction}.')
    schedules.parse_anneal(drop_fraction_anneal)
    if update_frequency < 1:
      raise ValueError(
          f'update_frequency must be >= 1, got {update_frequency}.')
    if grow_init not in GROW_INITS:
      raise ValueError(f'Unknown grow_init {grow_init!r}; choose one of '
                       f'{", ".join(GROW_INITS)}.')
    if redistribution not in REDISTRIBUTIONS:
      raise ValueError(f'Unknown redistribution {redistribution!r}; choose '
                       f'one of {", ".join(REDISTRIBUTIONS)}.')
    if not 0.0 <= grad_ema_decay < 1.0:
      raise ValueError(
          f'grad_ema_decay must be in [0, 1), got {grad_ema_decay}.')
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
    self._current_drop_fraction = state_variable(
        float(self.drop_fraction_at(self.begin_step)), name='drop_fraction',
        dtype=tf.float32)
    self._connections_changed = state_variable(
        tf.constant(0, tf.int64), name='connections_changed')
    self._layer_connections_changed = state_variable(
        tf.zeros([len(self._masked_weights)], tf.int64),
        name='layer_connections_changed')
    for mw in self._masked_weights:
      if self.keeps_grad_ema:
        self._grad_ema.append(
            state_variable(lambda w=mw.weight: tf.zeros(w.shape, tf.float32),
                           name=f'grad_ema_{mw.index}'))
      if self.grow_init != 'zeros':
        self._initial_std.append(
            state_variable(lambda mw=mw: self._grow_std_at_build(mw),
                           name=f'initial_std_{mw.index}'))

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
    counts = redistribute_counts(self._layer_statistics(),
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
    # Imported here: optimizers imports this module.
    from rigl_tf import optimizers  # pylint: disable=g-import-not-at-top

    changed = []
    for i, (mw, grad) in enumerate(zip(masked_weights, dense_grads)):
      inputs = {
          'weight': mw.weight,
          'grad': grad,
          'slots': optimizers.get_slot_resets(optimizer, mw.weight),
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
        layer_key(self.seed, index, step, _GROW_SCORE_STREAM))
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
            layer_key(self.seed, index, step, _DROP_GROW_STREAM), grow_std,
            [tf.convert_to_tensor(slot) for slot in slot_variables],
            list(fresh), tf.convert_to_tensor(ever)))
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


# Compiled: the hash's integer ops on a 784x300 layer take ~1.6 ms as
# TensorFlow ops on a 2-core CPU, ~0.07 ms fused by XLA.
_uniform_like = tf.function(
    lambda weight, key: masks_lib.hashed_uniform(tf.shape(weight), key),
    jit_compile=True)


@register('set')
@gin.configurable
class SET(DropGrowUpdater):
  """SET (Mocanu et al. 2018): grows at random positions.

  The score is uniform noise keyed by (seed, step, layer index)
  (`masks.hashed_uniform`): the same on every replica and worker.
  """

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    del dense_grad, grad_ema
    return _uniform_like(tf.convert_to_tensor(weight), key)



@register('snfs')
@gin.configurable
class SNFS(DropGrowUpdater):
  """Sparse Networks From Scratch (Dettmers & Zettlemoyer 2019).

  Grows where the EMA of the dense gradients, m_t = β m_{t-1} + (1 - β) g_t
  with β = `grad_ema_decay` (0.9) and m_0 = 0, is largest in magnitude. The
  EMA is updated every step (`on_step`), the mask-update step included.
  google-research/rigl's zero-debiasing divides every m_t by the same
  1 - β^t, which changes no ranking, hence is left out. Combine with
  `redistribution='momentum'` for SNFS's momentum redistribution.
  """

  uses_grad_ema = True

  @classmethod
  def training_flops_per_step(cls, costs):
    """2 f_S + f_D: the EMA needs the dense weight gradient every step."""
    return 2.0 * costs.f_sparse + costs.f_dense

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    del weight, dense_grad, key
    return tf.abs(grad_ema)


@register('rigl')
@gin.configurable
class RigL(DropGrowUpdater):
  """RigL (Evci et al. 2020): grows where the dense gradient is largest.

  As in the original code, the weight update is skipped on mask-update
  steps by default (`skip_weight_update_on_mask_update=False` applies it).

  One difference in counting, kept on purpose: RigL does not increment
  `global_step` on a mask-update step, so a run of T steps makes T weight
  updates and T / ΔT extra mask-update steps. Here the mask-update step
  counts as a step (`optimizer.iterations` grows), so a run of T steps makes
  T - (number of mask updates) weight updates (1% fewer at ΔT = 100). The
  learning-rate schedule and the update schedule both follow
  `optimizer.iterations`, so every step sees the rate RigL's schedule gives
  at that step, the schedule reaches its end at T, and step-based
  checkpoints and summaries stay aligned; only the weight-update count
  differs.
  """

  skip_weight_update_on_mask_update = True

  @classmethod
  def training_flops_per_step(cls, costs):
    """(3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1), RigL's rule.

    Every ΔT sparse steps, one step computes the dense weight gradient (and
    skips the weight update, as RigL's code does).

    Raises:
      ValueError: without `costs.update_frequency`.
    """
    dt = costs.update_frequency
    if dt is None:
      raise ValueError("Training FLOPs of 'rigl' need update_frequency.")
    return (3.0 * costs.f_sparse * dt + 2.0 * costs.f_sparse +
            costs.f_dense) / (dt + 1)

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    del weight, grad_ema, key
    return tf.abs(dense_grad)


# The pruning methods (gmp, granet, snip) register themselves on import.
from rigl_tf import pruning  # noqa: E402,F401  pylint: disable=g-import-not-at-top,wrong-import-position
