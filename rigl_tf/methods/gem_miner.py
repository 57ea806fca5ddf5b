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
"""Gem-Miner ("Rare Gems", Sreenivasan et al. 2022): a sparse network at init.

The weights are frozen at a signed-constant initialisation and never trained
during the search. Each maskable weight gets a score p in [0, 1] and a
permanent `flag` (`methods.scored.ScoredLayer`); the forward pass uses the
weight w * 1[p > 0.5] * flag (`quantized`, with a straight-through gradient
to p) or w * p * flag. Only the scores train: SGD with momentum, loss =
cross-entropy + lambda * sum p^2 (or sum |p|), scores clipped to [0, 1]
after every step. Every `iter_period` epochs the flags of the lowest-score
flagged weights are cleared, globally over all layers, so that the flagged
count shrinks geometrically to the target density after
N = floor((epochs - 1) / iter_period) rounds.

The mask found (the flags, or flags * 1[p > 0.5]) is the "gem": it is
accurate before any weight is trained. It is then fine-tuned as an ordinary
`MaskedLayer` model with a static mask (`SparseOptimizer`), optionally with
two sanity checks that fine-tune the same way: re-initialised weights, and
each layer's mask shuffled.

This module holds what is Gem-Miner's own: the thresholding, the conversion
of the searched model into a masked one, the sanity checks, and `GemMiner`,
the method (`train_eval.method = 'gem_miner'`) with its hyperparameters (gin:
`GemMiner.search_epochs = 150`, ...) and its training-cost rule. Its
search-then-fine-tune program runs on the shared trainer
(`rigl_tf.train.gem_miner_runner`).
"""

import math
from typing import Optional, Sequence

import gin
import numpy as np
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import compat
from rigl_tf import distributions
from rigl_tf import flavours
from rigl_tf import layers as masked_layers
from rigl_tf import rng
from rigl_tf.flops import cost
from rigl_tf.methods import base
from rigl_tf.methods import registry
from rigl_tf.methods import scored

REGULARIZERS = ('L2', 'L1', 'none')
SANITY_CHECKS = ('reinit', 'shuffle')
SEARCH_LR_SCHEDULES = ('cosine', 'constant')

# Streams of the stateless RNG keyed by (seed, layer index, stream).
_REINIT_STREAM = 12
_SHUFFLE_STREAM = 13


# ---------------------------------------------------------------------------
# Iterative thresholding.


def num_rounds(epochs, iter_period):
  """N = floor((epochs - 1) / iter_period) thresholding rounds."""
  return (epochs - 1) // iter_period


def round_epochs(epochs, iter_period):
  """The epochs (1-based) after which a round runs: iter_period * r."""
  return [iter_period * r for r in range(1, num_rounds(epochs, iter_period)
                                         + 1)]


def flagged_counts(total, sparsity, rounds):
  """Flagged weights after rounds 1..N: the geometric schedule.

  After round r, a fraction density^(r / N) of the weights stays flagged,
  density = 1 - sparsity (each round removes the same fraction
  1 - density^(1 / N) of the flagged weights), counted as the rest of the
  library counts: total - floor(s_r * total) with s_r = 1 - density^(r/N).
  The last round uses `sparsity` itself, so it ends exactly at the count
  every other method gives that sparsity.

  Args:
    total: number of scored weights, all layers together.
    sparsity: the target sparsity (1 - target density).
    rounds: N.

  Returns:
    list of N ints.
  """
  density = 1.0 - sparsity
  counts = []
  for r in range(1, rounds + 1):
    s_r = sparsity if r == rounds else 1.0 - density**(r / rounds)
    counts.append(distributions.num_ones(s_r, total))
  return counts


def global_keep_mask(scores, flags, keep, tie_seed=0):
  """Flags after keeping the `keep` highest-scored flagged weights.

  Global over the layers. Exact ties are common (clipping sends many scores
  to exactly 0 or 1) and are broken in a random order drawn from
  `tie_seed`: breaking them by position would clear whole layers (the last
  ones) at once. The result is a function of the values and the seed only,
  identical on every replica and on any number of them.

  Args:
    scores: list of numpy arrays.
    flags: list of 0/1 numpy arrays, aligned.
    keep: number of weights to keep flagged (<= number flagged now).
    tie_seed: seed of the tie-breaking order.

  Returns:
    list of 0/1 float32 numpy arrays, aligned with `scores`.
  """
  flat_scores = np.concatenate([np.ravel(s) for s in scores]).astype(
      np.float64)
  flat_flags = np.concatenate([np.ravel(f) for f in flags]) > 0
  if keep > int(flat_flags.sum()):
    raise ValueError(f'cannot keep {keep} weights: only '
                     f'{int(flat_flags.sum())} are flagged.')
  # Unflagged weights rank below every score (scores are in [0, 1]).
  ranked = np.where(flat_flags, flat_scores, -1.0)
  tie_break = np.random.default_rng(tie_seed).permutation(ranked.size)
  # lexsort sorts by the last key first: score descending, then tie_break.
  order = np.lexsort((tie_break, -ranked))
  new = np.zeros(flat_scores.shape, np.float32)
  new[order[:keep]] = 1.0
  result, start = [], 0
  for s in scores:
    result.append(new[start:start + s.size].reshape(s.shape))
    start += s.size
  return result


def threshold_flags(scored_layers, keep, tie_seed=0):
  """Clears the flags of all but the `keep` best flagged weights, globally.

  Runs eagerly in cross-replica context: the new flags are computed once
  from the (mirrored, identical) scores and assigned to every replica.

  Args:
    scored_layers: the model's `ScoredLayer`s.
    keep: number of weights left flagged.
    tie_seed: seed of the order that breaks exact score ties.
  """
  new_flags = global_keep_mask([layer.score.numpy() for layer in scored_layers],
                               [layer.flag.numpy() for layer in scored_layers],
                               keep, tie_seed)
  for layer, flag in zip(scored_layers, new_flags):
    layer.flag.assign(flag)


def score_regularization(scored_layers, kind):
  """sum p^2 ('L2') or sum |p| ('L1') over every score; 0 for 'none'."""
  if kind == 'none':
    return tf.constant(0.0)
  terms = [tf.reduce_sum(tf.square(layer.score)) if kind == 'L2' else
           tf.reduce_sum(tf.abs(layer.score)) for layer in scored_layers]
  return tf.add_n(terms)


# ---------------------------------------------------------------------------
# From the search to an ordinary masked model.


def finetune_masks(scored_layers, unflag_before_finetune=True):
  """The mask to fine-tune: the flags, or flags * 1[p > 0.5]."""
  if unflag_before_finetune:
    return [layer.flag.numpy() for layer in scored_layers]
  return [layer.rounded_mask().numpy() for layer in scored_layers]


def to_masked_model(model, layer_masks, kernels=None):
  """An ordinary `MaskedLayer` model with the search's weights and `masks`.

  Every `ScoredLayer` becomes a `MaskedLayer` around a trainable copy of its
  layer; BatchNormalization stays without scale and offset; weights
  (and BN statistics) are copied, then masked weights set to zero, so the
  invariant `kernel * (1 - mask) == 0` holds from the start.

  Args:
    model: the searched model (with `ScoredLayer`s).
    layer_masks: one 0/1 array per `ScoredLayer`, in `get_scored_layers`
      order.
    kernels: optional kernels to use instead of the frozen ones (e.g.
      re-initialised weights), same order.

  Returns:
    The new masked model.
  """
  masked_layers.check_graph_model(
      model, "Gem-Miner's to_masked_model()",
      'In a subclassed model, wrap layers with rigl_tf.layers.MaskedLayer.')

  keras_module = flavours.module(flavours.of(model))

  def clone_fn(layer):
    if isinstance(layer, keras_module.Model):
      return keras_module.models.clone_model(layer, clone_function=clone_fn)
    if isinstance(layer, scored.SCORED_LAYER_CLASSES):
      return masked_layers.MaskedLayer(
          scored.layer_copy(layer.layer, trainable=True))
    return scored.layer_copy(layer)

  new_model = keras_module.models.clone_model(model, clone_function=clone_fn)
  if not new_model.built:
    new_model.build(model.input_shape)
  scored_layers = scored.get_scored_layers(model)
  kernels = kernels or [layer.kernel.numpy() for layer in scored_layers]
  targets = {layer.name: layer
             for layer in masked_layers.get_masked_layers(new_model)}
  _copy_unscored_weights(model, new_model)
  for layer, mask, kernel in zip(scored_layers, layer_masks, kernels):
    target = targets[layer.name]
    target.layer.set_weights(layer.layer.get_weights())
    target.layer.kernel.assign(np.asarray(kernel) * mask)
    target.masks[0].assign(mask)
  return new_model


def _copy_unscored_weights(source, target):
  targets = {layer.name: layer for layer in target.layers}
  for layer in source.layers:
    other = targets.get(layer.name)
    if (other is None or isinstance(layer, scored.SCORED_LAYER_CLASSES)
        or not layer.weights):
      continue
    if isinstance(layer, flavours.classes('Model')):
      _copy_unscored_weights(layer, other)
    else:
      other.set_weights(layer.get_weights())


def reinitialized_kernels(scored_layers, seed):
  """Sanity check 1: new signed-constant kernels from another seed."""
  kernels = []
  for layer in scored_layers:
    key = rng.stateless_key(seed, layer.index, stream=_REINIT_STREAM)
    fresh = tf.random.stateless_normal(layer.kernel.shape, seed=key)
    if layer.weight_init == 'signed_constant':
      fresh = scored.signed_constant(fresh)
    else:
      fresh = fresh * math.sqrt(2.0 / scored.fan_in(layer.kernel.shape))
    kernels.append(fresh.numpy())
  return kernels


def shuffled_masks(layer_masks, seed):
  """Sanity check 2: each layer's mask randomly permuted (same count)."""
  result = []
  for index, mask in enumerate(layer_masks):
    key = rng.stateless_key(seed, index, stream=_SHUFFLE_STREAM)
    perm = tf.argsort(tf.random.stateless_uniform([mask.size], seed=key))
    result.append(np.ravel(mask)[perm.numpy()].reshape(mask.shape))
  return result


# ---------------------------------------------------------------------------
# The method: hyperparameters and training cost.


@registry.register('gem_miner')
@gin.configurable
class GemMiner(base.MaskUpdater):
  """Gem-Miner's hyperparameters and training cost.

  Registered as method 'gem_miner'. Its masks are static once found, so as
  an updater it behaves as 'static'; the trainer runs its search and its
  fine-tuning (`rigl_tf.train.gem_miner_runner`).

  Lengths are in epochs of `train_eval.batch_size` (`train_eval.train_steps`
  is not used): `search_epochs` of score search, then `finetune_epochs` of
  weight training for the gem and for each sanity check.
  """

  keeps_structure = False  # Not yet: its selections rank whole layers.

  def __init__(self,
               search_epochs: int = 150,
               iter_period: int = 5,
               score_init: str = 'unif',
               weight_init: str = 'signed_constant',
               quantized: bool = True,
               regularizer: str = 'L2',
               reg_lambda: float = 1e-4,
               search_learning_rate: float = 0.1,
               search_momentum: float = 0.9,
               search_lr_schedule: str = 'cosine',
               unflag_before_finetune: bool = True,
               finetune_epochs: int = 150,
               finetune_learning_rate: float = 0.01,
               finetune_momentum: float = 0.9,
               finetune_milestones: Sequence[int] = (50, 100),
               finetune_gamma: float = 0.1,
               finetune_weight_decay: float = 1e-4,
               sanity_checks: Sequence[str] = (),
               steps_per_epoch: Optional[int] = None,
               seed: int = 0,
               name: Optional[str] = None):
    """Gem-Miner's hyperparameters (defaults: the paper's ResNet-20 recipe).

    Args:
      search_epochs: epochs of score search.
      iter_period: epochs between thresholding rounds.
      score_init: 'unif', 'half', 'bern', 'bimodal' or 'skew'.
      weight_init: 'signed_constant' or 'standard'.
      quantized: forward with 1[p > 0.5] (straight-through) instead of p.
      regularizer: 'L2' (sum p^2), 'L1' (sum |p|) or 'none'.
      reg_lambda: the regularizer's weight lambda.
      search_learning_rate: initial learning rate of the scores.
      search_momentum: SGD momentum of the scores.
      search_lr_schedule: 'cosine' (to 0 over the search) or 'constant'.
      unflag_before_finetune: fine-tune mask = flags (else flags *
        1[p > 0.5]).
      finetune_epochs: epochs of weight training.
      finetune_learning_rate: initial fine-tuning learning rate.
      finetune_momentum: fine-tuning SGD momentum.
      finetune_milestones: epochs where the fine-tuning lr is multiplied by
        `finetune_gamma`.
      finetune_gamma: the multiplier at each milestone.
      finetune_weight_decay: L2 weight decay wd (gradient wd * w) while
        fine-tuning.
      sanity_checks: any of 'reinit' (new weights, same mask) and 'shuffle'
        (each layer's mask permuted), each fine-tuned as the gem.
      steps_per_epoch: steps of an epoch; default: the dataset's training
        examples // the global batch size.
      seed: seed of the sanity checks' randomness (the run's seed is used
        for weights and scores).
      name: module name.

    Raises:
      ValueError: for a value out of range.
    """
    super().__init__(seed=seed, name=name)
    checks.check_range(search_epochs, 'GemMiner.search_epochs', 2)
    # At least one thresholding round: floor((epochs - 1) / period) >= 1.
    checks.check_range(iter_period, 'GemMiner.iter_period', 1,
                     search_epochs - 1)
    checks.check_range(finetune_epochs, 'GemMiner.finetune_epochs', 0)
    if steps_per_epoch is not None:
      checks.check_range(steps_per_epoch, 'GemMiner.steps_per_epoch', 1)
    checks.check_range(reg_lambda, 'GemMiner.reg_lambda', 0.0)
    checks.check_range(finetune_weight_decay, 'GemMiner.finetune_weight_decay',
                     0.0)
    for value, allowed, what in (
        (score_init, scored.SCORE_INITS, 'score_init'),
        (weight_init, scored.WEIGHT_INITS, 'weight_init'),
        (regularizer, REGULARIZERS, 'regularizer'),
        (search_lr_schedule, SEARCH_LR_SCHEDULES, 'search_lr_schedule'),
        *((check, SANITY_CHECKS, 'sanity_checks') for check in sanity_checks)):
      checks.check_choice(value, allowed, f'GemMiner.{what}')
    self.search_epochs = int(search_epochs)
    self.iter_period = int(iter_period)
    self.score_init = score_init
    self.weight_init = weight_init
    self.quantized = bool(quantized)
    self.regularizer = regularizer
    self.reg_lambda = float(reg_lambda)
    self.search_learning_rate = float(search_learning_rate)
    self.search_momentum = float(search_momentum)
    self.search_lr_schedule = search_lr_schedule
    self.unflag_before_finetune = bool(unflag_before_finetune)
    self.finetune_epochs = int(finetune_epochs)
    self.finetune_learning_rate = float(finetune_learning_rate)
    self.finetune_momentum = float(finetune_momentum)
    self.finetune_milestones = [int(m) for m in finetune_milestones]
    self.finetune_gamma = float(finetune_gamma)
    self.finetune_weight_decay = float(finetune_weight_decay)
    self.sanity_checks = list(sanity_checks)
    self.steps_per_epoch = steps_per_epoch
    # Set by the run: the target (train_eval.sparsity).
    self.sparsity = None

  @classmethod
  def training_flops_per_step(cls, costs):
    """Search steps at dense cost (3 f_D), fine-tuning at sparse (3 f_S)."""
    if not {'search_steps', 'finetune_steps'} <= set(costs.options):
      raise ValueError("Training FLOPs of 'gem_miner' need search_steps and "
                       'finetune_steps (CLI: --search_steps, '
                       '--finetune_steps).')
    return cost.search_then_finetune_flops_per_step(
        costs.f_dense, costs.f_sparse, costs.options['search_steps'],
        costs.options['finetune_steps'])

  def training_cost_options(self, train_steps, costs=None):
    """The search's and fine-tuning's lengths, for the cost rule."""
    # The lengths are the search's and fine-tuning's.
    del train_steps, costs
    steps = self.steps_per_epoch or 1
    return {'search_steps': self.search_epochs * steps,
            'finetune_steps': self.finetune_epochs * steps}


# ---------------------------------------------------------------------------
# The search's own pieces: the score clipping, the rounded forward pass.


def clip_scores_fn(strategy, scored_layers):
  """fn() clipping every score to [0, 1] (cross-replica, after each step)."""

  def clip(score):
    return score.assign(tf.clip_by_value(score, 0.0, 1.0), read_value=False)

  def after_step():
    for layer in scored_layers:
      strategy.extended.update(compat.tf_variable(layer.score), clip,
                               group=False)

  return after_step


class RoundedForward:
  """Context: the scored layers forward with flag * 1[p > 0.5].

  Read when a forward pass is traced: an evaluation traced inside this
  context evaluates the rounded mask, whatever `quantized` says.
  """

  def __init__(self, scored_layers):
    self._layers = scored_layers
    self._saved = None

  def __enter__(self):
    self._saved = [layer.quantized for layer in self._layers]
    for layer in self._layers:
      layer.quantized = True

  def __exit__(self, *exc):
    for layer, value in zip(self._layers, self._saved):
      layer.quantized = value


def flagged_count(scored_layers):
  """Number of flagged weights, all layers together."""
  return int(sum(int(tf.reduce_sum(layer.flag)) for layer in scored_layers))


def rounded_count(scored_layers):
  """Number of weights with flag * 1[p > 0.5] = 1, all layers together."""
  return int(sum(int(tf.reduce_sum(layer.rounded_mask()))
                 for layer in scored_layers))
