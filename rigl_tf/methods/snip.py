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
"""SNIP (Lee et al. 2019): prune once at step 0 by |gradient × weight|.

At step 0, with dense masks, keep per layer the budget of the distribution
(or globally) with the largest |g · w|, the gradient all-reduced over
replicas; no weight update on that step; the masks never change afterwards.
"""

import gin
import numpy as np
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import compat
from rigl_tf import distributions
from rigl_tf import layers as masked_layers
from rigl_tf import masks as masks_lib
from rigl_tf import rng
from rigl_tf import slots
from rigl_tf import topk
from rigl_tf.methods import base
from rigl_tf.methods import gradual
from rigl_tf.methods import registry


@registry.register('snip')
@gin.configurable
class SNIP(base.MaskUpdater):
  """SNIP (Lee et al. 2019): prune once at step 0 by |g · w|.

  The masks start dense. On the first `num_batches` steps the weights are
  not updated; the dense gradients (all-reduced, summed over those steps)
  score every weight by |g · w|, and each layer keeps its budget from the
  distribution (`scope='layerwise'`) or the pooled layers share theirs by
  one global ranking (`scope='global'`, as in the SNIP paper). Then the
  masks are fixed.
  """

  keeps_structure = False  # Not yet: its selections rank whole layers.

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
    checks.check_choice(scope, gradual.SCOPES, 'SNIP scope')
    checks.check_range(num_batches, 'num_batches', 1)
    self.scope = scope
    self.num_batches = int(num_batches)
    self._budget = None
    self._in_pool = None
    self._grad_sum = []

  def init_masks(self, model, plan, seed=0, method='random',
                 train_steps=None):
    """Dense masks; remembers every layer's budget."""
    del train_steps, method
    self.set_structure(plan)
    weights = masked_layers.get_masked_weights(model)
    masks_lib.init_masks(weights, 0.0, seed=seed)
    self._budget = np.array([
        distributions.num_ones(plan.final[mw.name], mw.size)
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
        self._grad_sum.append(base.state_variable(
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

    compat.smart_cond(
        tf.equal(tf.cast(step, tf.int64), self.num_batches - 1), prune,
        lambda: tf.constant(0))

  def _prune(self, strategy, masked_weights, grads, step, optimizer):
    """Keeps the budget of largest |g · w| per layer (cross-replica)."""
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
      counts = topk.global_top_n_counts(
          scores, int(self._budget[self._in_pool].sum()),
          rng.stateless_key(self.seed, len(masked_weights), step,
                           gradual.GLOBAL_STREAM))
      keep = tf.tensor_scatter_nd_update(keep, [[i] for i in pool], counts)
    for i, mw in enumerate(masked_weights):
      strategy.extended.update(
          mw.mask, _snip_layer,
          args=(mw.weight, grads[i], keep[i],
                rng.stateless_key(self.seed, mw.index, step, 1),
                slots.get_slot_variables(optimizer, mw.weight),
                self._ever_active[i]),
          group=False)


def _snip_score(weight, grad):
  return tf.abs(tf.cast(grad, tf.float32) * tf.cast(weight, tf.float32))


def _add_assign(total, grad):
  return total.assign_add(tf.cast(grad, total.dtype), read_value=False)


def _snip_layer(mask, weight, grad, n_keep, key, slots, ever):
  """SNIP's mask of one layer on one device (inside extended.update)."""
  new_mask = topk.top_n_mask_random_ties(_snip_score(weight, grad),
                                              n_keep, key)
  weight.assign(weight * tf.cast(new_mask, weight.dtype), read_value=False)
  mask.assign(tf.cast(new_mask, mask.dtype), read_value=False)
  for slot in slots:
    slot.assign(slot * tf.cast(new_mask, slot.dtype), read_value=False)
  # The dense step-0 masks only scored: no weight was trained there.
  ever.assign(tf.cast(new_mask, ever.dtype), read_value=False)
  return n_keep
