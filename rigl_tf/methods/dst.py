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
"""SET, SNFS and RigL: the drop/grow engine with three grow scores.

As in jaxpruner, a dynamic sparse training method is the engine
(`methods.drop_grow.DropGrowUpdater`) and a score that picks the weights to
grow: `set` random, `snfs` the |EMA of the dense gradients|, `rigl` the
|dense gradient|.
"""

import gin
import tensorflow as tf

from rigl_tf import topk
from rigl_tf.methods import drop_grow
from rigl_tf.methods import registry

# Compiled: XLA fuses the hash's integer ops into one pass, where TensorFlow
# runs (and allocates) them one by one.
_uniform_like = tf.function(
    lambda weight, key: topk.hashed_uniform(tf.shape(weight), key),
    jit_compile=True)


@registry.register('set')
@gin.configurable
class SET(drop_grow.DropGrowUpdater):
  """SET (Mocanu et al. 2018): grows at random positions.

  The score is uniform noise keyed by (seed, step, layer index)
  (`topk.hashed_uniform`): the same on every replica and worker.
  """

  def grow_scores(self, weight, dense_grad, grad_ema, key):
    del dense_grad, grad_ema
    return _uniform_like(tf.convert_to_tensor(weight), key)


@registry.register('snfs')
@gin.configurable
class SNFS(drop_grow.DropGrowUpdater):
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


@registry.register('rigl')
@gin.configurable
class RigL(drop_grow.DropGrowUpdater):
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
