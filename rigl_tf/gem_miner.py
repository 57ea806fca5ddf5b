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
permanent `flag`; the forward pass uses the weight w * 1[p > 0.5] * flag
(`quantized`, with a straight-through gradient to p) or w * p * flag. Only
the scores train: SGD with momentum, loss = cross-entropy + lambda * sum p^2
(or sum |p|), scores clipped to [0, 1] after every step. Every `iter_period`
epochs the flags of the lowest-score flagged weights are cleared, globally
over all layers, so that the flagged count shrinks geometrically to the
target density after N = floor((epochs - 1) / iter_period) rounds.

The mask found (the flags, or flags * 1[p > 0.5]) is the "gem": it is
accurate before any weight is trained. It is then fine-tuned as an ordinary
`MaskedLayer` model with a static mask (`SparseOptimizer`), optionally with
two sanity checks that fine-tune the same way: re-initialised weights, and
each layer's mask shuffled.

The method is `train_eval.method = 'gem_miner'`; `GemMiner` (registered with
the other methods in `rigl_tf.updaters`) holds its hyperparameters, set with
gin (`GemMiner.search_epochs = 150`, ...), and provides its own training run
(`GemMiner.runner`), which the shared trainer dispatches to.
"""

import dataclasses
import json
import math
import os
import time
from typing import Callable, Optional, Sequence

from absl import logging
import gin
import numpy as np
import tensorflow as tf
import tf_keras as keras

from rigl_tf import data
from rigl_tf import distributions
from rigl_tf import flops
from rigl_tf import layers as masked_layers
from rigl_tf import masks as masks_lib
from rigl_tf import optimizers as optimizers_lib
from rigl_tf import strategies
from rigl_tf import updaters

SCORE_INITS = ('unif', 'half', 'bern', 'bimodal', 'skew')
WEIGHT_INITS = ('signed_constant', 'standard')
REGULARIZERS = ('L2', 'L1', 'none')
SANITY_CHECKS = ('reinit', 'shuffle')
SEARCH_LR_SCHEDULES = ('cosine', 'constant')
QUANTIZE_THRESHOLD = 0.5

# Streams of the stateless RNG keyed by (seed, layer index, stream).
_SCORE_STREAM = 11
_REINIT_STREAM = 12
_SHUFFLE_STREAM = 13


@tf.custom_gradient
def straight_through_round(scores):
  """1[p > 0.5] in the forward pass; the gradient passes to p unchanged."""

  def grad(upstream):
    return upstream

  return tf.cast(scores > QUANTIZE_THRESHOLD, scores.dtype), grad


def fan_in(shape):
  """Inputs per output unit of a Dense ([in, out]) or Conv ([..., in, out])."""
  return int(np.prod(shape[:-1]))


def signed_constant(kernel):
  """sign(kernel) * sqrt(2 / fan_in): the signed Kaiming constant."""
  scale = math.sqrt(2.0 / fan_in(kernel.shape))
  return tf.where(kernel >= 0, scale, -scale) * tf.ones_like(kernel)


def initial_scores(shape, kind, seed, index):
  """Initial scores in [0, 1] (stateless: the same on every replica).

  Args:
    shape: the kernel's shape.
    kind: 'unif' U[0, 1]; 'half' 0.5; 'bern' Bernoulli(0.5) in {0, 1};
      'bimodal' Beta(0.1, 0.1); 'skew' Beta(1, 5).
    seed: integer seed.
    index: the layer's index (part of the RNG key).

  Returns:
    float32 tensor of `shape`.

  Raises:
    ValueError: for an unknown `kind`.
  """
  if kind not in SCORE_INITS:
    raise ValueError(f'Unknown score init {kind!r}; choose one of '
                     f'{", ".join(SCORE_INITS)}.')
  key = masks_lib.stateless_key(seed, index, _SCORE_STREAM)
  if kind == 'half':
    return tf.fill(shape, 0.5)
  uniform = tf.random.stateless_uniform(shape, seed=key)
  if kind == 'unif':
    return uniform
  if kind == 'bern':
    return tf.cast(uniform < 0.5, tf.float32)
  alpha, beta = (0.1, 0.1) if kind == 'bimodal' else (1.0, 5.0)
  # Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
  x = tf.random.stateless_gamma(shape, seed=key, alpha=alpha)
  y = tf.random.stateless_gamma(shape, seed=key + [0, 1], alpha=beta)
  return x / tf.maximum(x + y, 1e-30)


def _call_with_kernel(layer, inputs, kernel):
  """`layer`'s forward pass with `kernel` in place of its own kernel."""
  if isinstance(layer, keras.layers.Dense):
    rank = inputs.shape.rank
    if rank == 2:
      outputs = tf.matmul(inputs, kernel)
    else:
      outputs = tf.tensordot(inputs, kernel, [[rank - 1], [0]])
    data_format = 'NHWC'
  else:
    outputs = layer.convolution_op(inputs, kernel)
    data_format = 'NHWC' if layer.data_format == 'channels_last' else 'NCHW'
  if layer.use_bias:
    outputs = tf.nn.bias_add(outputs, layer.bias, data_format=data_format)
  if layer.activation is not None:
    outputs = layer.activation(outputs)
  return outputs


def is_scorable(layer):
  """Whether `ScoredLayer` can wrap `layer` (Dense and plain Conv2D)."""
  if isinstance(layer, keras.layers.Dense):
    return True
  return isinstance(layer, keras.layers.Conv2D) and not isinstance(
      layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
              keras.layers.Conv2DTranspose))


@keras.utils.register_keras_serializable(package='rigl_tf')
class ScoredLayer(keras.layers.Wrapper):
  """A Dense/Conv2D with frozen weights, a score per weight and a flag.

  The forward pass uses the kernel w * 1[p > 0.5] * flag with a
  straight-through gradient to p (`quantized=True`), or w * p * flag. The
  wrapped layer (kernel and bias) is not trainable; `score` is the only
  trainable variable. `flag` is permanent: iterative thresholding clears
  flags and nothing sets them again.

  Attributes:
    layer: the wrapped layer.
    score: the trainable scores, same shape as the kernel.
    flag: the non-trainable 0/1 flags, same shape as the kernel.
    index: the layer's position in the model (keys its random scores).
  """

  def __init__(self, layer, quantized=True, score_init='unif',
               weight_init='signed_constant', seed=0, index=0, **kwargs):
    if not is_scorable(layer):
      raise ValueError(
          f'ScoredLayer wraps Dense or Conv2D layers, got {layer.name!r} '
          f'({type(layer).__name__}).')
    if score_init not in SCORE_INITS:
      raise ValueError(f'Unknown score init {score_init!r}; choose one of '
                       f'{", ".join(SCORE_INITS)}.')
    if weight_init not in WEIGHT_INITS:
      raise ValueError(f'Unknown weight init {weight_init!r}; choose one of '
                       f'{", ".join(WEIGHT_INITS)}.')
    kwargs.setdefault('name', layer.name)
    super().__init__(layer, **kwargs)
    self.quantized = bool(quantized)
    self.score_init = score_init
    self.weight_init = weight_init
    self.seed = int(seed)
    self.index = int(index)
    self.layer.trainable = False

  def build(self, input_shape):
    if not self.layer.built:
      with tf.name_scope(self.layer.name):
        self.layer.build(input_shape)
      self.layer.built = True
    kernel = self.layer.kernel
    if self.weight_init == 'signed_constant':
      kernel.assign(signed_constant(kernel))
    shape = kernel.shape
    self.score = self.add_weight(
        name='score', shape=shape, dtype=tf.float32, trainable=True,
        initializer=lambda shape, dtype=None: initial_scores(
            shape, self.score_init, self.seed, self.index))
    self.flag = self.add_weight(
        name='flag', shape=shape, dtype=tf.float32, initializer='ones',
        trainable=False,
        # Flags change only in cross-replica context (the thresholding).
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    super().build(input_shape)

  @property
  def kernel(self):
    return self.layer.kernel

  def gate(self):
    """The multiplier of the kernel: 1[p > 0.5] * flag, or p * flag."""
    scores = self.score
    if self.quantized:
      scores = straight_through_round(tf.convert_to_tensor(scores))
    return scores * self.flag

  def rounded_mask(self):
    """flag * 1[p > 0.5] (a tensor, no gradient)."""
    return self.flag * tf.cast(self.score > QUANTIZE_THRESHOLD, tf.float32)

  def call(self, inputs):
    kernel = self.layer.kernel * tf.cast(self.gate(), self.layer.kernel.dtype)
    return _call_with_kernel(self.layer, inputs, kernel)

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)

  def get_config(self):
    return {**super().get_config(), 'quantized': self.quantized,
            'score_init': self.score_init, 'weight_init': self.weight_init,
            'seed': self.seed, 'index': self.index}


def _check_graph_model(model):
  if not (isinstance(model, keras.Sequential)
          or getattr(model, '_is_graph_network', False)):
    raise ValueError(
        f'{model.name!r} is a subclassed model: Gem-Miner clones Sequential '
        'and Functional models only; wrap layers with ScoredLayer directly.')


def _layer_copy(layer, **overrides):
  return layer.__class__.from_config({**layer.get_config(), **overrides})


def scored_model(model, quantized=True, score_init='unif',
                 weight_init='signed_constant', seed=0):
  """A copy of `model` ready for the search.

  Dense/Conv2D layers become `ScoredLayer`s (new, frozen weights drawn from
  the layers' initializers, then made signed-constant); BatchNormalization
  loses its scale and offset (`center=False, scale=False`), as the paper's
  NonAffineBatchNorm. Call under `keras.utils.set_random_seed` for
  reproducible weights.

  Args:
    model: a tf_keras Sequential or Functional model.
    quantized: see `ScoredLayer`.
    score_init: see `initial_scores`.
    weight_init: 'signed_constant' or 'standard' (the layers' own init).
    seed: seed of the scores.

  Returns:
    The new, built model.
  """
  _check_graph_model(model)
  counter = iter(range(1 << 30))

  def clone_fn(layer):
    if isinstance(layer, keras.Model):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if isinstance(layer, keras.layers.BatchNormalization):
      return _layer_copy(layer, center=False, scale=False)
    if is_scorable(layer):
      return ScoredLayer(_layer_copy(layer), quantized=quantized,
                         score_init=score_init, weight_init=weight_init,
                         seed=seed, index=next(counter))
    return _layer_copy(layer)

  new_model = keras.models.clone_model(model, clone_function=clone_fn)
  if not new_model.built:
    new_model.build(model.input_shape)
  return new_model


def get_scored_layers(model):
  """The `ScoredLayer`s of `model` (recursively), ordered by `index`."""
  # pylint: disable-next=protected-access
  found = [layer for layer in model._flatten_layers(include_self=False)
           if isinstance(layer, ScoredLayer)]
  return sorted(found, key=lambda layer: layer.index)


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

  Every `ScoredLayer` becomes a `MaskedLayer` around a trainable copy of
  its layer; BatchNormalization stays without scale and offset; weights
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
  _check_graph_model(model)

  def clone_fn(layer):
    if isinstance(layer, keras.Model):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if isinstance(layer, ScoredLayer):
      return masked_layers.MaskedLayer(_layer_copy(layer.layer,
                                                   trainable=True))
    return _layer_copy(layer)

  new_model = keras.models.clone_model(model, clone_function=clone_fn)
  if not new_model.built:
    new_model.build(model.input_shape)
  scored = get_scored_layers(model)
  kernels = kernels or [layer.kernel.numpy() for layer in scored]
  targets = {layer.name: layer
             for layer in masked_layers.get_masked_layers(new_model)}
  _copy_unscored_weights(model, new_model)
  for layer, mask, kernel in zip(scored, layer_masks, kernels):
    target = targets[layer.name]
    target.layer.set_weights(layer.layer.get_weights())
    target.layer.kernel.assign(np.asarray(kernel) * mask)
    target.masks[0].assign(mask)
  return new_model


def _copy_unscored_weights(source, target):
  targets = {layer.name: layer for layer in target.layers}
  for layer in source.layers:
    other = targets.get(layer.name)
    if other is None or isinstance(layer, ScoredLayer) or not layer.weights:
      continue
    if isinstance(layer, keras.Model):
      _copy_unscored_weights(layer, other)
    else:
      other.set_weights(layer.get_weights())


def reinitialized_kernels(scored_layers, seed):
  """Sanity check 1: new signed-constant kernels from another seed."""
  kernels = []
  for layer in scored_layers:
    key = masks_lib.stateless_key(seed, layer.index, _REINIT_STREAM)
    fresh = tf.random.stateless_normal(layer.kernel.shape, seed=key)
    if layer.weight_init == 'signed_constant':
      fresh = signed_constant(fresh)
    else:
      fresh = fresh * math.sqrt(2.0 / fan_in(layer.kernel.shape))
    kernels.append(fresh.numpy())
  return kernels


def shuffled_masks(layer_masks, seed):
  """Sanity check 2: each layer's mask randomly permuted (same count)."""
  result = []
  for index, mask in enumerate(layer_masks):
    key = masks_lib.stateless_key(seed, index, _SHUFFLE_STREAM)
    perm = tf.argsort(tf.random.stateless_uniform([mask.size], seed=key))
    result.append(np.ravel(mask)[perm.numpy()].reshape(mask.shape))
  return result


# ---------------------------------------------------------------------------
# The method: hyperparameters, training cost and its own run.


@updaters.register('gem_miner')
@gin.configurable
class GemMiner(updaters.MaskUpdater):
  """Gem-Miner's hyperparameters, training cost and training run.

  Registered as method 'gem_miner'. Its masks are static once found, so as
  an updater it behaves as 'static'; `runner` runs the search and the
  fine-tuning (the shared trainer dispatches to it).

  Lengths are in epochs of `train_eval.batch_size` (`train_eval.train_steps`
  is not used): `search_epochs` of score search, then `finetune_epochs` of
  weight training for the gem and for each sanity check.
  """

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
    if search_epochs < 2 or iter_period < 1:
      raise ValueError('GemMiner needs search_epochs >= 2 and iter_period >= '
                       f'1, got {search_epochs} and {iter_period}.')
    if num_rounds(search_epochs, iter_period) < 1:
      raise ValueError(
          f'GemMiner.iter_period={iter_period} leaves no thresholding round '
          f'in {search_epochs} search epochs (need iter_period <= '
          'search_epochs - 1).')
    if finetune_epochs < 0:
      raise ValueError('GemMiner.finetune_epochs must be >= 0.')
    for value, allowed, what in (
        (score_init, SCORE_INITS, 'score_init'),
        (weight_init, WEIGHT_INITS, 'weight_init'),
        (regularizer, REGULARIZERS, 'regularizer'),
        (search_lr_schedule, SEARCH_LR_SCHEDULES, 'search_lr_schedule')):
      if value not in allowed:
        raise ValueError(f'Unknown GemMiner.{what} {value!r}; choose one of '
                         f'{", ".join(allowed)}.')
    unknown = sorted(set(sanity_checks) - set(SANITY_CHECKS))
    if unknown:
      raise ValueError(f'Unknown GemMiner.sanity_checks {unknown}; choose '
                       f'from {", ".join(SANITY_CHECKS)}.')
    if reg_lambda < 0 or finetune_weight_decay < 0:
      raise ValueError('GemMiner.reg_lambda and finetune_weight_decay must be '
                       '>= 0.')
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
    if steps_per_epoch is not None and steps_per_epoch < 1:
      raise ValueError('GemMiner.steps_per_epoch must be >= 1.')
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
    return flops.search_then_finetune_flops_per_step(
        costs.f_dense, costs.f_sparse, costs.options['search_steps'],
        costs.options['finetune_steps'])

  def training_cost_options(self, train_steps, costs=None):
    """The search's and fine-tuning's lengths, for the cost rule."""
    # The lengths are the search's and fine-tuning's.
    del train_steps, costs
    steps = self.steps_per_epoch or 1
    return {'search_steps': self.search_epochs * steps,
            'finetune_steps': self.finetune_epochs * steps}

  @staticmethod
  def runner(config, strategy, info):
    """The method's own run, called by the shared trainer.

    Args:
      config: the shared trainer's `RunConfig` (the `train_eval` arguments).
      strategy: the run's tf.distribute strategy.
      info: the dataset's `data.DatasetInfo`.

    Returns:
      The report of `run_gem_miner`.
    """
    arguments = {field.name: getattr(config, field.name)
                 for field in dataclasses.fields(config)}
    return run_gem_miner(strategy=strategy, info=info, **arguments)


# ---------------------------------------------------------------------------
# The run.


def _split_fn(strategy, global_batch):
  """Host batch -> per-replica rows, as the shared trainer splits them."""
  per_replica = global_batch // strategy.num_replicas_in_sync

  def split(batch):

    def take(context):
      start = context.replica_id_in_sync_group * per_replica
      return tf.nest.map_structure(lambda t: t[start:start + per_replica],
                                   batch)

    return strategy.experimental_distribute_values_from_function(take)

  return split


def make_train_loop(strategy, model, optimizer, variables, extra_loss,
                    global_batch, num_classes, label_smoothing=0.0,
                    after_step=None):
  """A tf.function running `num_steps` distributed steps on `variables`.

  Args:
    strategy: the tf.distribute strategy of the model.
    model: the model (called with training=True).
    optimizer: its optimizer.
    variables: the variables to train (the scores, or the weights).
    extra_loss: fn() -> scalar added to the mean cross-entropy (scaled by
      the number of replicas, as a regularization loss).
    global_batch: global batch size.
    num_classes: number of classes.
    label_smoothing: label smoothing of the cross-entropy.
    after_step: optional fn() run in cross-replica context after each step
      (e.g. clipping the scores).

  Returns:
    (loop(iterator, num_steps), metrics dict with 'loss' and 'accuracy').
  """
  with strategy.scope():
    metrics = {'loss': keras.metrics.Mean(),
               'accuracy': keras.metrics.SparseCategoricalAccuracy()}
  loss_obj = keras.losses.CategoricalCrossentropy(
      from_logits=True, label_smoothing=label_smoothing,
      reduction=keras.losses.Reduction.NONE)

  def replica_step(images, labels):
    with tf.GradientTape() as tape:
      logits = model(images, training=True)
      per_example = loss_obj(tf.one_hot(labels, num_classes), logits)
      loss = tf.nn.compute_average_loss(per_example,
                                        global_batch_size=global_batch)
      loss += tf.nn.scale_regularization_loss(extra_loss())
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    metrics['loss'].update_state(per_example)
    metrics['accuracy'].update_state(labels, logits)

  split = _split_fn(strategy, global_batch)
  distributed = isinstance(strategy, tf.distribute.TPUStrategy)

  @tf.function
  def loop(iterator, num_steps):
    for _ in tf.range(num_steps):
      batch = next(iterator)
      if not distributed:
        batch = split(batch)
      strategy.run(replica_step, args=batch)
      if after_step is not None:
        after_step()

  return loop, metrics


def make_evaluate(strategy, model, dataset):
  """fn() -> (test accuracy of `model` on `dataset`, number of examples)."""
  with strategy.scope():
    accuracy = keras.metrics.SparseCategoricalAccuracy()

  @tf.function
  def eval_step(images, labels):

    def fn(images, labels):
      accuracy.update_state(labels, model(images, training=False))

    strategy.run(fn, args=(images, labels))

  def evaluate():
    accuracy.reset_state()
    for images, labels in strategy.experimental_distribute_dataset(dataset):
      eval_step(images, labels)
    return float(accuracy.result()), int(accuracy.count.numpy())

  return evaluate


class _RoundedForward:
  """Context: the scored layers forward with flag * 1[p > 0.5]."""

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


def _clip_scores(strategy, scored_layers):

  def clip(score):
    return score.assign(tf.clip_by_value(score, 0.0, 1.0), read_value=False)

  def after_step():
    for layer in scored_layers:
      strategy.extended.update(layer.score, clip, group=False)

  return after_step


def _flagged(scored_layers):
  return int(sum(int(tf.reduce_sum(layer.flag)) for layer in scored_layers))


@dataclasses.dataclass
class RunContext:
  """What the phases of a Gem-Miner run share (see `make_context`)."""
  strategy: tf.distribute.Strategy
  info: data.DatasetInfo
  miner: GemMiner
  train_ds_fn: Callable
  eval_ds: tf.data.Dataset
  batch_size: int
  steps_per_epoch: int
  label_smoothing: float
  say: Callable

  def train_iterator(self, seed):
    """An iterator over global training batches shuffled with `seed`."""
    dataset = self.train_ds_fn(seed)
    if isinstance(self.strategy, tf.distribute.TPUStrategy):
      return iter(self.strategy.experimental_distribute_dataset(dataset))
    return iter(dataset)


def make_context(strategy, info, miner, dataset, batch_size, eval_batch_size,
                 data_dir=None, preprocess_fn=None, eval_preprocess_fn=None,
                 label_smoothing=0.0, quiet=True):
  """The `RunContext` of a run on tfds `dataset` (an epoch: all batches).

  Raises:
    ValueError: if the dataset does not say how many examples it has.
  """
  steps_per_epoch = miner.steps_per_epoch
  if steps_per_epoch is None:
    if not info.num_train_examples:
      raise ValueError(
          f'gem_miner counts epochs and {dataset} does not say how many '
          'training examples it has: bind GemMiner.steps_per_epoch.')
    steps_per_epoch = max(1, info.num_train_examples // batch_size)
    miner.steps_per_epoch = steps_per_epoch

  def train_ds_fn(data_seed):
    return data.get_dataset(dataset, 'train', batch_size, training=True,
                            data_dir=data_dir, preprocess_fn=preprocess_fn,
                            seed=data_seed)

  eval_ds = data.get_dataset(dataset, 'eval', eval_batch_size, training=False,
                             data_dir=data_dir,
                             preprocess_fn=eval_preprocess_fn)
  say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
  return RunContext(strategy, info, miner, train_ds_fn, eval_ds, batch_size,
                    steps_per_epoch, label_smoothing, say)


def search(ctx, model, output_dir, seed, on_epoch_end=None,
           restore_dir=None, writer=None):
  """The score search with iterative thresholding; resumes from checkpoints.

  Args:
    ctx: the run's `RunContext`.
    model: the scored model (built in the strategy's scope).
    output_dir: where the search's checkpoints and history go (None: none).
    seed: data-order seed.
    on_epoch_end: optional fn(epoch, model) called after each epoch's
      checkpoint.
    restore_dir: where to resume from (default `output_dir`; a non-chief
      worker saves to scratch and resumes from the chief's checkpoints).
    writer: optional `tf.summary` writer for per-epoch scalars.

  Returns:
    list of per-epoch dicts: epoch, loss, train accuracy, test accuracy
    before and after rounding, flagged count and density.
  """
  miner, strategy = ctx.miner, ctx.strategy
  scored = get_scored_layers(model)
  total = sum(int(layer.flag.shape.num_elements()) for layer in scored)
  rounds = num_rounds(miner.search_epochs, miner.iter_period)
  counts = dict(zip(round_epochs(miner.search_epochs, miner.iter_period),
                    flagged_counts(total, miner.sparsity, rounds)))
  search_steps = miner.search_epochs * ctx.steps_per_epoch
  with strategy.scope():
    schedule = (keras.optimizers.schedules.CosineDecay(
        miner.search_learning_rate, search_steps)
                if miner.search_lr_schedule == 'cosine' else
                miner.search_learning_rate)
    optimizer = keras.optimizers.SGD(schedule, momentum=miner.search_momentum)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
  history = []
  # The input position is saved with the search where the pipeline allows
  # it (small datasets, no py_function): a resumed search then continues
  # the exact data order. Otherwise a resumed search reshuffles.
  restore_dir = restore_dir or output_dir
  latest = tf.train.latest_checkpoint(restore_dir) if restore_dir else None
  iterator = None
  if (data.checkpoint_input_position(ctx.info)
      and not isinstance(strategy, tf.distribute.TPUStrategy)
      and (latest is None or _has_input_position(latest))):
    iterator = ctx.train_iterator(seed)

  def make_manager(iterator):
    trackables = dict(model=model, optimizer=optimizer, epoch=epoch)
    if iterator is not None:
      trackables['train_iterator'] = iterator
    return tf.train.CheckpointManager(
        tf.train.Checkpoint(**trackables), output_dir, max_to_keep=2)

  manager = make_manager(iterator) if output_dir else None
  if latest:
    manager.checkpoint.restore(latest).assert_existing_objects_matched()
    history_path = os.path.join(restore_dir, 'history.json')
    if tf.io.gfile.exists(history_path):
      with tf.io.gfile.GFile(history_path) as f:
        history = json.load(f)[:int(epoch.numpy())]
    ctx.say(f'Resumed the search after epoch {int(epoch.numpy())}.')
  saving_position = iterator is not None
  if iterator is None:
    iterator = ctx.train_iterator(seed + 1_000_003 * int(epoch.numpy()))
  scores = [layer.score for layer in scored]

  def extra_loss():
    return miner.reg_lambda * score_regularization(scored, miner.regularizer)

  loop, metrics = make_train_loop(
      strategy, model, optimizer, scores, extra_loss, ctx.batch_size,
      ctx.info.num_classes, ctx.label_smoothing,
      after_step=_clip_scores(strategy, scored))
  evaluate = make_evaluate(strategy, model, ctx.eval_ds)
  evaluate_rounded = (evaluate if miner.quantized else
                      make_evaluate(strategy, model, ctx.eval_ds))
  while int(epoch.numpy()) < miner.search_epochs:
    start = time.time()
    for metric in metrics.values():
      metric.reset_state()
    loop(iterator, tf.constant(ctx.steps_per_epoch))
    done = int(epoch.numpy()) + 1
    loss = float(metrics['loss'].result())
    if not math.isfinite(loss):
      raise ValueError(f'the search diverged (loss {loss}) in epoch {done}; '
                       'lower GemMiner.search_learning_rate.')
    if done in counts:
      threshold_flags(scored, counts[done], tie_seed=seed * 1_000_003 + done)
    # "Before rounding": the model as it trains (p itself when not
    # quantized); "after rounding": with flag * 1[p > 0.5].
    before, _ = evaluate()
    with _RoundedForward(scored):
      after = before if miner.quantized else evaluate_rounded()[0]
    flagged = _flagged(scored)
    history.append({
        'epoch': done, 'loss': loss,
        'train_accuracy': float(metrics['accuracy'].result()),
        'accuracy_before_rounding': before,
        'accuracy_after_rounding': after,
        'flagged': flagged, 'flagged_density': flagged / total,
        'rounded_density': int(sum(
            int(tf.reduce_sum(layer.rounded_mask())) for layer in scored))
                           / total})
    epoch.assign(done)
    if writer is not None:
      with writer.as_default(step=done):
        for name in ('loss', 'accuracy_before_rounding',
                     'accuracy_after_rounding', 'flagged_density'):
          tf.summary.scalar(f'search/{name}', history[-1][name])
    if manager:
      try:
        manager.save(checkpoint_number=done)
      except (tf.errors.FailedPreconditionError,
              tf.errors.UnimplementedError) as e:
        if not saving_position:
          raise
        logging.warning('The input pipeline cannot be saved (%s); a resumed '
                        'search reshuffles the data.',
                        str(e).splitlines()[0])
        saving_position = False
        manager = make_manager(None)
        manager.save(checkpoint_number=done)
      _write_json(os.path.join(output_dir, 'history.json'), history)
    ctx.say(f'search epoch {done}/{miner.search_epochs}  loss {loss:.4f}  '
            f'test acc {before:.4f} (rounded {after:.4f})  flagged '
            f'{flagged / total:.4%}  {time.time() - start:.1f}s')
    if on_epoch_end is not None:
      on_epoch_end(done, model)
  return history


def finetune(ctx, model, seed, label):
  """Trains only the weights of a masked model (static masks); accuracy.

  SGD with momentum, lr `finetune_learning_rate` multiplied by
  `finetune_gamma` at each milestone epoch, L2 weight decay; the
  `SparseOptimizer` keeps masked weights at zero after every step.

  Args:
    ctx: the run's `RunContext`.
    model: the `MaskedLayer` model (built in the strategy's scope).
    seed: data-order seed.
    label: name for progress lines.

  Returns:
    (accuracy before fine-tuning, accuracy after, evaluation examples).
  """
  miner, strategy = ctx.miner, ctx.strategy
  evaluate = make_evaluate(strategy, model, ctx.eval_ds)
  at_init, count = evaluate()
  steps = miner.finetune_epochs * ctx.steps_per_epoch
  if not steps:
    return at_init, at_init, count
  with strategy.scope():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [m * ctx.steps_per_epoch for m in miner.finetune_milestones],
        [miner.finetune_learning_rate * miner.finetune_gamma**i
         for i in range(len(miner.finetune_milestones) + 1)])
    optimizer = optimizers_lib.SparseOptimizer(
        keras.optimizers.SGD(schedule, momentum=miner.finetune_momentum),
        model, updaters.MaskUpdater())
  variables = model.trainable_variables

  def extra_loss():
    decay = 0.5 * miner.finetune_weight_decay * tf.add_n(
        [tf.reduce_sum(tf.square(v)) for v in variables])
    return decay + (tf.add_n(model.losses) if model.losses else 0.0)

  loop, metrics = make_train_loop(
      strategy, model, optimizer, variables, extra_loss, ctx.batch_size,
      ctx.info.num_classes, ctx.label_smoothing)
  iterator = ctx.train_iterator(seed)
  for epoch in range(miner.finetune_epochs):
    loop(iterator, tf.constant(ctx.steps_per_epoch))
    loss = float(metrics['loss'].result())
    if not math.isfinite(loss):
      raise ValueError(f'fine-tuning ({label}) diverged (loss {loss}); lower '
                       'GemMiner.finetune_learning_rate.')
    for metric in metrics.values():
      metric.reset_state()
    if (epoch + 1) % 10 == 0 or epoch + 1 == miner.finetune_epochs:
      ctx.say(f'fine-tune {label} epoch {epoch + 1}/{miner.finetune_epochs}  '
              f'loss {loss:.4f}')
  bad = masked_layers.check_invariant(model)
  if bad:
    raise AssertionError(f'mask invariant violated in {bad}')
  return (at_init, *evaluate())


def _has_input_position(path):
  """Whether checkpoint `path` saved the input pipeline's position."""
  names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  return any(name.startswith('train_iterator/') for name in names)


def _write_json(path, obj):
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def run_gem_miner(*, strategy, info, output_dir, mode='train_and_eval',
                  dataset='digits', data_dir=None, model_fn=None,
                  batch_size=128, eval_batch_size=500, sparsity=0.9,
                  seed=0, label_smoothing=0.0, preprocess_fn=None,
                  eval_preprocess_fn=None, quiet=False, on_epoch_end=None,
                  miner=None, **unused):
  """A whole Gem-Miner run: search, gem at init, fine-tuning, sanity checks.

  Called by `train_lib.train_eval` with its arguments (those Gem-Miner does
  not use, such as `train_steps` or `distribution`, are ignored: the
  lengths are `GemMiner`'s epochs and the per-layer densities are what the
  search finds).

  Args:
    strategy: the tf.distribute strategy.
    info: the dataset's `data.DatasetInfo`.
    output_dir: the run's directory: search checkpoints in `search/`,
      the fine-tuned model in `finetune/`, TensorBoard scalars in `train/`,
      `operative_config.gin`, `report.json` (written by the chief).
    mode: 'train_and_eval' or 'train' (eval_once is not supported).
    dataset: tfds name.
    data_dir: tfds data directory.
    model_fn: fn(input_shape=, num_classes=) -> tf_keras model.
    batch_size: global batch size.
    eval_batch_size: evaluation batch size.
    sparsity: target sparsity (1 - target density) of the scored layers.
    seed: seed of weights, scores and data order.
    label_smoothing: label smoothing of the cross-entropy.
    preprocess_fn: training (image, label) map.
    eval_preprocess_fn: evaluation map.
    quiet: print only the final report.
    on_epoch_end: optional fn(epoch, model) after each search epoch.
    miner: the `GemMiner` with the hyperparameters (default: from gin).
    **unused: the shared trainer's other arguments.

  Returns:
    The report dict (also written to output_dir/report.json).

  Raises:
    ValueError: on bad input or a diverging run.
  """
  del unused
  # Imported here: train_lib imports this module to register the method.
  from rigl_tf import train_lib  # pylint: disable=g-import-not-at-top

  if mode == 'eval_once':
    raise ValueError('--mode=eval_once is not supported for gem_miner; the '
                     'run reports the fine-tuned accuracy (report.json).')
  if not 0.0 < sparsity < 1.0:
    raise ValueError(f'gem_miner needs a target train_eval.sparsity in (0, 1),'
                     f' got {sparsity}.')
  miner = miner or updaters.get_updater('gem_miner')
  miner.sparsity = float(sparsity)
  ctx = make_context(strategy, info, miner, dataset, batch_size,
                     eval_batch_size, data_dir, preprocess_fn,
                     eval_preprocess_fn, label_smoothing, quiet)
  steps_per_epoch, say = ctx.steps_per_epoch, ctx.say
  with strategy.scope():
    keras.utils.set_random_seed(seed)
    base = model_fn(input_shape=info.input_shape,
                    num_classes=info.num_classes)
    model = scored_model(base, quantized=miner.quantized,
                         score_init=miner.score_init,
                         weight_init=miner.weight_init, seed=seed)
  tf.io.gfile.makedirs(output_dir)
  chief = strategies.is_chief(strategy)
  search_dir = os.path.join(output_dir, 'search')
  save_dir = search_dir
  if not chief:  # Other workers save (collectively) to a scratch dir.
    save_dir = os.path.join(output_dir, '.worker_tmp',
                            str(strategy.cluster_resolver.task_id))
  writer = (tf.summary.create_file_writer(os.path.join(output_dir, 'train'))
            if chief else None)
  say(f'Gem-Miner on {dataset}: {model.name}, target density '
      f'{1 - sparsity:.4%}, {miner.search_epochs} search epochs x '
      f'{steps_per_epoch} steps, {miner.finetune_epochs} fine-tuning epochs, '
      f'replicas={strategy.num_replicas_in_sync}')
  history = search(ctx, model, save_dir, seed, on_epoch_end,
                   restore_dir=search_dir, writer=writer)
  scored = get_scored_layers(model)
  gem_masks = finetune_masks(scored, miner.unflag_before_finetune)
  with strategy.scope():
    gem = to_masked_model(model, gem_masks)
  gem_at_init, gem_finetuned, count = finetune(ctx, gem, seed + 1, 'gem')
  sanity = {}
  for check in miner.sanity_checks:
    with strategy.scope():
      if check == 'reinit':
        variant = to_masked_model(
            model, gem_masks, reinitialized_kernels(scored, miner.seed + 1))
      else:
        variant = to_masked_model(model,
                                  shuffled_masks(gem_masks, miner.seed + 1))
    at_init, finetuned, _ = finetune(ctx, variant, seed + 1, check)
    sanity[check] = {'accuracy_at_init': at_init,
                     'accuracy_finetuned': finetuned}
  ckpt_dir = (os.path.join(output_dir, 'finetune') if chief else
              os.path.join(save_dir, 'finetune'))
  tf.train.CheckpointManager(tf.train.Checkpoint(model=gem), ckpt_dir,
                             max_to_keep=1).save(checkpoint_number=0)
  total_steps = (miner.search_epochs + miner.finetune_epochs) * steps_per_epoch
  flops_numbers, flops_table = train_lib.flops_report(gem, miner, total_steps)
  report = {
      'method': 'gem_miner', 'dataset': dataset,
      'search_epochs': miner.search_epochs,
      'finetune_epochs': miner.finetune_epochs,
      'steps_per_epoch': steps_per_epoch, 'step': total_steps,
      'search': history,
      'gem_accuracy_at_init': gem_at_init,
      'accuracy': gem_finetuned, 'eval_examples': count,
      'sanity_checks': sanity,
      'masks': train_lib.sparsity_report(gem),
      **flops_numbers,
  }
  if mode != 'train_and_eval':
    report.pop('accuracy')
  print(format_report(report), flush=True)
  print(train_lib.format_sparsity_report(report['masks']), flush=True)
  print(train_lib.format_flops_report(flops_numbers), flush=True)
  if flops_table:
    print(flops_table, flush=True)
  if chief:
    with writer.as_default(step=miner.search_epochs):
      tf.summary.scalar('gem/accuracy_at_init', gem_at_init)
      tf.summary.scalar('gem/accuracy_finetuned', gem_finetuned)
    writer.flush()
    with tf.io.gfile.GFile(os.path.join(output_dir, 'operative_config.gin'),
                           'w') as f:
      f.write(gin.operative_config_str())
    _write_json(os.path.join(output_dir, 'report.json'), report)
  else:
    try:
      tf.io.gfile.rmtree(save_dir)
    except tf.errors.NotFoundError:
      pass
  return report


def format_report(report):
  """The accuracies of a Gem-Miner run as text lines."""
  lines = [f'Gem at initialisation (untrained weights): test accuracy '
           f'{report["gem_accuracy_at_init"]:.4%}']
  if 'accuracy' in report:
    lines.append(f'Final test accuracy: {report["accuracy"]:.4%} (gem after '
                 f'{report["finetune_epochs"]} fine-tuning epochs)')
  for check, numbers in report['sanity_checks'].items():
    lines.append(f'Sanity check {check}: {numbers["accuracy_at_init"]:.4%} '
                 f'at init, {numbers["accuracy_finetuned"]:.4%} fine-tuned')
  return '\n'.join(lines)
