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
"""Gem-Miner's scored layers: frozen weights, a score and a flag per weight.

`ScoredLayer` wraps a Dense or Conv2D whose weights never train: the forward
pass uses w * 1[p > 0.5] * flag (`quantized`, with a straight-through
gradient to the score p) or w * p * flag. `scored_model` turns a model into
one ready for Gem-Miner's search (`methods.gem_miner`). Both Keras flavours:
the tf_keras `ScoredLayer` and `Keras3ScoredLayer` share `_Scoring`.
"""

import math

import keras as keras3
import numpy as np
import tensorflow as tf
import tf_keras as keras

from rigl_tf import checks
from rigl_tf import compat
from rigl_tf import flavours
from rigl_tf import layers as masked_layers
from rigl_tf import rng

SCORE_INITS = ('unif', 'half', 'bern', 'bimodal', 'skew')
WEIGHT_INITS = ('signed_constant', 'standard')
QUANTIZE_THRESHOLD = 0.5

# Stream of the stateless RNG of the initial scores (keyed by seed, layer).
_SCORE_STREAM = 11


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
  """sign(kernel) * sqrt(2 / fan_in): the signed Kaiming constant (float32).

  A kernel read in a 16-bit compute dtype (mixed precision) gives the same
  float32 values.
  """
  scale = math.sqrt(2.0 / fan_in(kernel.shape))
  return tf.where(tf.convert_to_tensor(kernel) >= 0, scale, -scale)


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
  checks.check_choice(kind, SCORE_INITS, 'score init')
  key = rng.stateless_key(seed, index, stream=_SCORE_STREAM)
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
  if isinstance(layer, flavours.classes('layers.Dense')):
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
    outputs = tf.nn.bias_add(outputs, tf.cast(layer.bias, outputs.dtype),
                             data_format=data_format)
  if layer.activation is not None:
    outputs = layer.activation(outputs)
  return outputs


def is_scorable(layer):
  """Whether `ScoredLayer` can wrap `layer` (Dense and plain Conv2D, of
  either Keras flavour)."""
  if isinstance(layer, flavours.classes('layers.Dense')):
    return True
  return isinstance(layer, flavours.classes('layers.Conv2D')) and not (
      isinstance(layer, flavours.classes(
          'layers.DepthwiseConv2D', 'layers.SeparableConv2D',
          'layers.Conv2DTranspose')))


class _Scoring:
  """What a scored layer of either Keras flavour does; the flavour's class
  adds the base class (its Wrapper), `_add_score_weights` and `build`."""

  def __init__(self, layer, quantized=True, score_init='unif',
               weight_init='signed_constant', seed=0, index=0, **kwargs):
    if not is_scorable(layer):
      raise ValueError(
          f'ScoredLayer wraps Dense or Conv2D layers, got {layer.name!r} '
          f'({type(layer).__name__}).')
    checks.check_choice(score_init, SCORE_INITS, 'score init')
    checks.check_choice(weight_init, WEIGHT_INITS, 'weight init')
    kwargs.setdefault('name', layer.name)
    super().__init__(layer, **kwargs)  # The flavour's Wrapper.
    self.quantized = bool(quantized)
    self.score_init = score_init
    self.weight_init = weight_init
    self.seed = int(seed)
    self.index = int(index)
    self.layer.trainable = False

  def _build_scores(self):
    """Signed-constant kernel (by default), then the scores and flags."""
    kernel = self.layer.kernel
    if self.weight_init == 'signed_constant':
      kernel.assign(signed_constant(compat.tf_variable(kernel)))
    shape = tuple(kernel.shape)
    self.score, self.flag = self._add_score_weights(
        shape, lambda shape, dtype=None: initial_scores(
            shape, self.score_init, self.seed, self.index))

  @property
  def kernel(self):
    return self.layer.kernel

  def gate(self):
    """The multiplier of the kernel: 1[p > 0.5] * flag, or p * flag."""
    scores = tf.convert_to_tensor(compat.tf_variable(self.score))
    if self.quantized:
      scores = straight_through_round(scores)
    return scores * tf.convert_to_tensor(compat.tf_variable(self.flag))

  def rounded_mask(self):
    """flag * 1[p > 0.5] (a tensor, no gradient)."""
    return self.flag * tf.cast(self.score > QUANTIZE_THRESHOLD, tf.float32)

  def call(self, inputs):
    # Read in the compute dtype (float16 under a mixed policy).
    kernel = tf.cast(compat.tf_variable(self.layer.kernel),
                     self.compute_dtype)
    kernel = kernel * tf.cast(self.gate(), kernel.dtype)
    return _call_with_kernel(self.layer, inputs, kernel)

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)

  def get_config(self):
    return {**super().get_config(), 'quantized': self.quantized,
            'score_init': self.score_init, 'weight_init': self.weight_init,
            'seed': self.seed, 'index': self.index}


@keras.utils.register_keras_serializable(package='rigl_tf')
class ScoredLayer(_Scoring, keras.layers.Wrapper):
  """A Dense/Conv2D with frozen weights, a score per weight and a flag.

  The forward pass uses the kernel w * 1[p > 0.5] * flag with a
  straight-through gradient to p (`quantized=True`), or w * p * flag. The
  wrapped layer (kernel and bias) is not trainable; `score` is the only
  trainable variable. `flag` is permanent: iterative thresholding clears
  flags and nothing sets them again. For a Keras 3 layer, `ScoredLayer(...)`
  makes a `Keras3ScoredLayer`.

  Attributes:
    layer: the wrapped layer.
    score: the trainable scores, same shape as the kernel.
    flag: the non-trainable 0/1 flags, same shape as the kernel.
    index: the layer's position in the model (keys its random scores).
  """

  def __new__(cls, layer=None, *args, **kwargs):
    if cls is ScoredLayer and flavours.is_keras3(layer):
      return Keras3ScoredLayer(layer, *args, **kwargs)
    return super().__new__(cls, layer, *args, **kwargs)

  def _add_score_weights(self, shape, initializer):
    score = self.add_weight(
        name='score', shape=shape, dtype=tf.float32, trainable=True,
        initializer=initializer)
    flag = self.add_weight(
        name='flag', shape=shape, dtype=tf.float32, initializer='ones',
        trainable=False,
        # Flags change only in cross-replica context (the thresholding).
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    return score, flag

  def build(self, input_shape):
    if not self.layer.built:
      with tf.name_scope(self.layer.name):
        self.layer.build(input_shape)
      self.layer.built = True
    self._build_scores()
    super().build(input_shape)


@keras3.saving.register_keras_serializable(package='rigl_tf')
class Keras3ScoredLayer(_Scoring, keras3.layers.Wrapper):
  """`ScoredLayer` for a Keras 3 Dense or Conv2D (what `ScoredLayer(layer)`
  makes of one): the same forward pass, scores and flags."""

  def _add_score_weights(self, shape, initializer):
    score = self.add_weight(
        name='score', shape=shape, dtype='float32', trainable=True,
        initializer=initializer, autocast=False)
    flag = self.add_weight(
        name='flag', shape=shape, dtype='float32', initializer='ones',
        trainable=False, autocast=False, aggregation='only_first_replica')
    return score, flag

  def build(self, input_shape=None):
    if not self.layer.built:
      self.layer.build(input_shape)
    self._build_scores()
    self.built = True


# Both flavours' scored layers (for isinstance).
SCORED_LAYER_CLASSES = (ScoredLayer, Keras3ScoredLayer)


def layer_copy(layer, **overrides):
  return layer.__class__.from_config({**layer.get_config(), **overrides})


def check_scorable(model):
  """Raises ValueError if `model` holds a maskable kernel outside the
  Dense and Conv2D layers the search can score (attention, an Embedding, an
  RNN, a custom block, a separable convolution): it would stay dense."""
  unscorable = []

  def visit(container):
    for layer in container.layers:
      if isinstance(layer, flavours.classes('Model')):
        visit(layer)
      elif not is_scorable(layer) and masked_layers.is_maskable(layer):
        unscorable.append(f'{layer.name} ({type(layer).__name__})')

  visit(model)
  if unscorable:
    raise ValueError(
        f'Gem-Miner scores Dense and Conv2D layers only; '
        f'{", ".join(unscorable)} would stay dense. Train this model with '
        'another method (e.g. rigl or granet).')


def scored_model(model, quantized=True, score_init='unif',
                 weight_init='signed_constant', seed=0):
  """A copy of `model` ready for the search.

  Dense/Conv2D layers become `ScoredLayer`s (new, frozen weights drawn from
  the layers' initializers, then made signed-constant); BatchNormalization
  loses its scale and offset (`center=False, scale=False`), as the paper's
  NonAffineBatchNorm. Call under `keras.utils.set_random_seed` for
  reproducible weights.

  Args:
    model: a Sequential or Functional model of either Keras flavour.
    quantized: see `ScoredLayer`.
    score_init: see `initial_scores`.
    weight_init: 'signed_constant' or 'standard' (the layers' own init).
    seed: seed of the scores.

  Returns:
    The new, built model.
  """
  masked_layers.check_graph_model(
      model, 'Gem-Miner', 'Train it with another method (e.g. rigl), or '
      'wrap its layers with rigl_tf.methods.scored.ScoredLayer.')
  check_scorable(model)
  counter = iter(range(1 << 30))
  keras_module = flavours.module(flavours.of(model))

  def clone_fn(layer):
    if isinstance(layer, keras_module.Model):
      return keras_module.models.clone_model(layer, clone_function=clone_fn)
    if isinstance(layer, keras_module.layers.BatchNormalization):
      return layer_copy(layer, center=False, scale=False)
    if is_scorable(layer):
      # The wrapper computes in its layer's dtype (float16 under a mixed
      # policy): its forward pass is its own, not the layer's call.
      return ScoredLayer(layer_copy(layer), quantized=quantized,
                         score_init=score_init, weight_init=weight_init,
                         seed=seed, index=next(counter),
                         dtype=layer.dtype_policy)
    return layer_copy(layer)

  new_model = keras_module.models.clone_model(model,
                                              clone_function=clone_fn)
  if not new_model.built:
    new_model.build(model.input_shape)
  return new_model


def get_scored_layers(model):
  """The `ScoredLayer`s of `model` (recursively), ordered by `index`."""
  found = [layer for layer in masked_layers.walk_layers(model)
           if isinstance(layer, SCORED_LAYER_CLASSES)]
  return sorted(found, key=lambda layer: layer.index)
