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
"""GraNet (Liu et al. 2021, VITA-Group/GraNet): pruning plus regeneration.

`granet`: the gradual pruning of `gmp`, from dense masks or from
`init_density` masks (GraNet-ST), plus neuroregeneration at every update
step until `end_step`: per layer, drop a further floor(r_t · n) of the active
weights by magnitude and regrow as many where the dense gradient is largest,
r_t cosine-decayed from `prune_rate` to 0.005 over the whole training.
"""

import gin
import numpy as np
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import distributions
from rigl_tf import masks as masks_lib
from rigl_tf import rng
from rigl_tf import schedules
from rigl_tf import topk
from rigl_tf.methods import gradual
from rigl_tf.methods import registry

GROWTHS = ('random', 'gradient', 'momentum')
GRANET_REDISTRIBUTIONS = ('none', 'magnitude', 'nonzeros')
INITIAL_MASKS = ('erk', 'uniform', 'dense', 'prune_uniform', 'prune_global')


@registry.register('granet')
@gin.configurable
class GraNet(gradual.GradualPruning):
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
    checks.check_choice(growth, GROWTHS, 'growth')
    checks.check_choice(redistribution, GRANET_REDISTRIBUTIONS,
                        'redistribution')
    initial_mask = initial_mask.lower()
    checks.check_choice(initial_mask, INITIAL_MASKS, 'initial_mask')
    checks.check_range(init_density, 'init_density', 0.0, 1.0, low_open=True)
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
      keep = distributions.num_ones(sparsity, total)
      counts = topk.global_top_n_counts(
          [tf.abs(mw.weight) for mw in pool], keep,
          rng.stateless_key(seed, len(weights),
                            stream=gradual.GLOBAL_STREAM))
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
      return topk.hashed_uniform(tf.shape(weight), key)
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
