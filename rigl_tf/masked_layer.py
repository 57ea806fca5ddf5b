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
"""`MaskedLayer`: owns a 0/1 mask for every maskable weight of a layer tree.

The wrapped layer may be a leaf (Dense, Conv, EinsumDense, Embedding, an
RNN) or a container (a custom layer, `MultiHeadAttention`,
`TimeDistributed`, `Bidirectional`, a model): the wrapper owns one
non-trainable mask per maskable weight found anywhere below it
(`rigl_tf.maskable`). Masked weights are *stored as zeros* (the
`SparseOptimizer` keeps them so), hence the forward pass is the plain layer
call and the gradient w.r.t. a kernel is the dense gradient RigL needs.

`get_masked_weights(model)` lists every (weight, mask) pair in a stable
order, which is the "layer index" that keys stateless randomness.
"""

import dataclasses
from typing import Sequence

import keras as keras3
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from rigl_tf import compat
from rigl_tf import flavours
from rigl_tf import maskable

_GUARD_MESSAGE = (
    'Masked layer {name!r} is being trained, but no rigl_tf SparseOptimizer '
    'keeps its masks: a plain optimizer would update masked weights and '
    'break the sparsity. Wrap the optimizer: model.compile(optimizer='
    'rigl_tf.optimizers.SparseOptimizer(keras.optimizers.SGD(...), model, '
    "updater), ...); in a custom loop use that optimizer's apply_gradients. "
    '(To take gradients for another purpose, set '
    '`managed_by_sparse_optimizer = True` on the masked layers.)')


def _mask_key(found):
  """A mask's variable name: 'kernel' for the wrapped layer's own kernel,
  '_query_dense.kernel' below it (checkpoint names: stable)."""
  return '.'.join(found.path)


class _Masking:
  """What a masked layer of either Keras flavour does: the masks of the
  maskable weights below the wrapped layer, and the training guard.

  The flavour's wrapper class adds the base class, `_set_untracked`,
  `_add_mask` (its `add_weight`), `build` and `call`.
  """

  def _wrap(self, layer, layer_class, mask_depthwise, mask_recurrent,
            kwargs, wrapper_init):
    """The flavour's `__init__`: checks `layer`, wraps it, makes masks."""
    if not isinstance(layer, layer_class) or isinstance(
        layer, MASKED_LAYER_CLASSES):
      raise ValueError('MaskedLayer wraps a Keras layer (not a masked '
                       f'one), got {type(layer).__name__}.')
    options = self._init_masking(layer, mask_depthwise, mask_recurrent)
    kwargs.setdefault('name', layer.name)
    wrapper_init(layer, **kwargs)
    self._init_state(options)
    if layer.built:
      self._make_masks()

  def _init_masking(self, layer, mask_depthwise, mask_recurrent):
    """Checks `layer`; returns the `maskable.Options`."""
    options = maskable.Options(depthwise=bool(mask_depthwise),
                               recurrent=bool(mask_recurrent))
    if not maskable.is_maskable(layer, options):
      raise ValueError(
          f'Layer {layer.name!r} ({type(layer).__name__}) has no maskable '
          'weights: wrap Dense, EinsumDense, Conv, SeparableConv, Embedding, '
          'an RNN, a layer that holds any of them, a layer implementing '
          'tfmot PrunableLayer or registered with '
          'rigl_tf.layers.register_maskable, or DepthwiseConv with '
          'mask_depthwise=True.')
    return options

  def _init_state(self, options):
    self.mask_depthwise = options.depthwise
    self.mask_recurrent = options.recurrent
    self._set_untracked('_masks_by_key', {})
    self._set_untracked('_dense_init_stds', {})
    self._set_untracked('_masks_complete', False)
    self._set_untracked('_masked_pairs', None)

  @property
  def options(self):
    return maskable.Options(depthwise=self.mask_depthwise,
                            recurrent=self.mask_recurrent)

  @property
  def found(self):
    """The `maskable.Found` of every maskable weight that exists now."""
    return maskable.find(self.layer, self.options, stop=MASKED_LAYER_CLASSES)

  def _make_masks(self):
    """Adds a mask for each maskable weight that has none yet."""
    for found in self.found:
      key = _mask_key(found)
      if key not in self._masks_by_key:
        self._masks_by_key[key] = self._add_mask(key, found.weight)

  @property
  def prunable_weights(self):
    return [found.weight for found, _ in self.masked_found()]

  @property
  def masks(self):
    return [mask for _, mask in self.masked_found()]

  def masked_found(self):
    """[(Found, mask)] of the weights that have a mask, in order.

    Walked once the masks are complete (after the first call), then kept:
    no mask is added afterwards.
    """
    if self._masked_pairs is not None:
      return list(self._masked_pairs)
    pairs = [(f, self._masks_by_key[_mask_key(f)]) for f in self.found
             if _mask_key(f) in self._masks_by_key]
    if self._masks_complete:
      self._set_untracked('_masked_pairs', tuple(pairs))
    return pairs

  def get_config(self):
    return {**super().get_config(), 'mask_depthwise': self.mask_depthwise,
            'mask_recurrent': self.mask_recurrent}

  def record_dense_init_std(self, weight):
    """Remembers the std of `weight`'s dense values (before masking).

    `rigl_tf.masks.init_masks` calls it before zeroing the masked weights:
    RigL's masked variables keep their initial values, and its
    `grow_init='random_normal'` draws with their std, which the zeros
    stored here no longer give.

    Args:
      weight: one of `prunable_weights`, still dense.
    """
    # The first record wins: a later call sees the weight already masked.
    self._dense_init_stds.setdefault(
        self._key_of(weight),
        float(tf.math.reduce_std(tf.cast(weight, tf.float32))))

  def dense_init_std(self, weight):
    """The std recorded by `record_dense_init_std`, or None."""
    return self._dense_init_stds.get(self._key_of(weight))

  def _key_of(self, weight):
    for found in self.found:
      if found.weight is weight or compat.tf_variable(found.weight) is weight:
        return _mask_key(found)
    raise ValueError(f'{weight.name} is not masked by {self.name}.')

  # Set by `SparseOptimizer` for the layers whose masks it keeps.
  managed_by_sparse_optimizer = False
  # For `rigl_tf.maskable`: the weights are the wrapped layer's (this is a
  # TFMOT PrunableLayer only for TFMOT's own wrapper).
  walk_its_layer = True

  def _after_call(self, outputs, training):
    """The first call's new masks, then the guard of unmanaged training."""
    if not self._masks_complete:
      # Weights the wrapped layer created in its first call (attention's
      # projections, a custom layer's sublayers) get their masks now.
      self._make_masks()
      self._set_untracked('_masks_complete', True)
    if training is True and not self.managed_by_sparse_optimizer:
      # Training with a plain optimizer would move masked weights off zero,
      # silently: fail when the first step takes gradients through this
      # layer. A training-mode forward pass alone (BatchNorm statistics) is
      # fine.
      outputs = tf.nest.map_structure(self._unmanaged_gradient_guard,
                                      outputs)
    return outputs

  def _unmanaged_gradient_guard(self, tensor):
    message = _GUARD_MESSAGE.format(name=self.name)

    @tf.custom_gradient
    def guard(x):
      def grad(upstream):
        del upstream
        raise ValueError(message)
      return tf.identity(x), grad

    return guard(tensor)

  def apply_masks(self):
    """Sets masked weights to zero (`weight *= mask`)."""
    for weight, mask in zip(self.prunable_weights, self.masks):
      weight.assign(weight * tf.cast(mask, weight.dtype))


@keras.utils.register_keras_serializable(package='rigl_tf')
class MaskedLayer(_Masking, keras.layers.Wrapper,
                  tfmot.sparsity.keras.PrunableLayer):
  """Wraps a Keras layer; owns a 0/1 mask for each maskable weight below it.

  The wrapper keeps the wrapped layer's name, so per-layer configuration
  (dense layers, custom sparsities) and reports use the familiar names.
  The forward pass is the wrapped layer's own call: masked weights are kept
  at exactly zero by `SparseOptimizer` (call `apply_masks()` after writing
  weights by hand).

  Usable directly in subclassed models, of either Keras flavour (for a
  Keras 3 layer, `MaskedLayer(...)` makes a `Keras3MaskedLayer`):

    self.fc = MaskedLayer(keras.layers.Dense(10))
    self.attention = MaskedLayer(keras.layers.MultiHeadAttention(4, 16))

  Masks exist once the weights do: at once for a built layer, else when the
  wrapper is built, or, for layers that create weights in their first call
  (`MultiHeadAttention`, custom layers), after that call.

  Depthwise kernels are not masked unless `mask_depthwise=True` (RigL keeps
  them dense). RNN recurrent kernels are masked beside the input kernels
  (as TFMOT does) unless `mask_recurrent=False`.

  A tf_keras masked layer is a TFMOT `PrunableLayer` whose prunable weights
  are its masked ones, so `tfmot.sparsity.keras.prune_low_magnitude` can
  wrap it (the `tfmot_gmp` method does).

  Attributes:
    layer: the wrapped layer.
    prunable_weights: the maskable variables below it, in a stable order.
    masks: the mask variables, same order and shapes as `prunable_weights`.
    found: the `maskable.Found` records of `prunable_weights`.
  """

  def __new__(cls, layer=None, *args, **kwargs):
    if cls is MaskedLayer and flavours.is_keras3(layer):
      return Keras3MaskedLayer(layer, *args, **kwargs)
    return super().__new__(cls, layer, *args, **kwargs)

  def __init__(self, layer, mask_depthwise=False, mask_recurrent=True,
               **kwargs):
    self._wrap(layer, keras.layers.Layer, mask_depthwise, mask_recurrent,
               kwargs, super().__init__)

  @compat.no_dependency_tracking
  def _set_untracked(self, name, value):
    # Kept out of Keras' attribute tracking: the masks are already tracked
    # once by `add_weight`.
    setattr(self, name, value)

  def _add_mask(self, key, weight):
    return self.add_weight(
        name=f'{key}_mask', shape=weight.shape,
        # The variable's own dtype (float32 under mixed precision, where
        # `weight.dtype` may read as the float16 compute dtype) and no
        # autocasting: 0/1 masks stay exact float32 variables.
        dtype=getattr(weight, 'true_dtype', weight.dtype),
        experimental_autocast=False, initializer='ones', trainable=False,
        # Masks change only in cross-replica context; if a user writes one
        # in replica context, take the first replica's value.
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def build(self, input_shape):
    if not self.layer.built:
      with tf.name_scope(self.layer.name):
        self.layer.build(input_shape)
      self.layer.built = True
    self._make_masks()
    super().build(input_shape)

  def get_prunable_weights(self):
    """TFMOT's `PrunableLayer` interface: the masked weights."""
    return self.prunable_weights

  def call(self, inputs, *args, **kwargs):
    outputs = self.layer(inputs, *args, **kwargs)
    return self._after_call(outputs, kwargs.get('training'))

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)


@keras3.saving.register_keras_serializable(package='rigl_tf')
class Keras3MaskedLayer(_Masking, keras3.layers.Wrapper):
  """`MaskedLayer` for a Keras 3 layer (what `MaskedLayer(layer)` makes).

  The same masks, names and guarantees as the tf_keras `MaskedLayer`;
  `rigl_tf` reads and writes the TensorFlow variables behind them
  (`MaskedWeight`).
  """

  def __init__(self, layer, mask_depthwise=False, mask_recurrent=True,
               **kwargs):
    self._wrap(layer, keras3.layers.Layer, mask_depthwise, mask_recurrent,
               kwargs, super().__init__)

  def _set_untracked(self, name, value):
    with compat.keras3_untracked():
      setattr(self, name, value)

  def _add_mask(self, key, weight):
    with compat.keras3_unlocked(self), tf.init_scope():
      return self.add_weight(
          name=f'{key}_mask', shape=tuple(weight.shape),
          dtype=weight.dtype, autocast=False,
          initializer='ones', trainable=False,
          aggregation='only_first_replica')

  def build(self, input_shape=None):
    if not self.layer.built and compat.builds_from_one_shape(self.layer):
      self.layer.build(input_shape)
    self._make_masks()
    self.built = True

  def call(self, inputs, *args, training=None, **kwargs):
    if training is not None:
      kwargs['training'] = training
    outputs = self.layer(inputs, *args, **kwargs)
    return self._after_call(outputs, training)


# Both flavours' masked layers (for isinstance).
MASKED_LAYER_CLASSES = (MaskedLayer, Keras3MaskedLayer)


@dataclasses.dataclass(frozen=True)
class MaskedWeight:
  """One maskable weight of a model and its mask.

  Attributes:
    layer: the `MaskedLayer` that owns the mask.
    weight: the weight variable (a kernel).
    mask: its 0/1 mask variable.
    name: a stable, readable name: the layer name when it masks one weight
      of its own ('fc'), else the path of layer names to the weight's owner
      ('attention/query', 'block/dense_1'), with the weight's name when the
      owner has several kernels ('lstm/recurrent_kernel',
      'conv/pointwise_kernel'). Counted ops have the same names in
      `rigl_tf.flops` (except a separable convolution's only masked
      pointwise kernel: 'conv' here).
    index: position in the model's stable order; keys stateless randomness.
    owner: the layer that owns the weight (the wrapped layer, or one below
      it; an RNN layer for its cells' kernels).
    variable: the variable as the layer holds it (see `layer_variable`).
  """
  layer: MaskedLayer
  weight: tf.Variable
  mask: tf.Variable
  name: str
  index: int
  owner: object = None
  variable: object = None

  @property
  def layer_variable(self):
    """The variable as its layer holds it (a Keras 3 variable, whose
    `constraint` the optimizer applies; `weight` is the TensorFlow one)."""
    return self.variable if self.variable is not None else self.weight

  @property
  def size(self):
    return int(self.weight.shape.num_elements())

  @property
  def fan_in_out(self):
    """(fan-in, fan-out) of the weight's op (`maskable.fan_in_out`)."""
    return maskable.fan_in_out(self.owner, self.weight)

  @property
  def erk_shape(self):
    """The shape ERK weighs the weight by (`maskable.erk_shape`)."""
    return maskable.erk_shape(self.owner, self.weight)


def walk_layers(layer):
  """Yields `layer`'s sublayers depth-first (not below masked layers)."""
  for _, child in compat.named_sublayers(layer):
    yield child
    if not isinstance(child, MASKED_LAYER_CLASSES):
      yield from walk_layers(child)


def get_masked_layers(model):
  """Every `MaskedLayer` inside `model` (recursively), in a stable order."""
  if isinstance(model, MASKED_LAYER_CLASSES):
    return [model]
  return [layer for layer in walk_layers(model)
          if isinstance(layer, MASKED_LAYER_CLASSES)]


def _display_name(layer, found, single):
  """The wrapped layer's name for its single own weight ('fc'), else the
  path of layer names to the owner ('mha/query', 'block/dense_1'), and the
  weight's name when the owner has several kernels ('lstm/kernel',
  'lstm/recurrent_kernel'): the names `rigl_tf.flops` gives the ops."""
  if single and len(found.own) == 1 and found.owner is layer.layer:
    return layer.name
  suffix = ([found.own[-1]] if maskable.has_several_kernels(found.owner)
            else [])
  return '/'.join([layer.name, *found.owner_names, *suffix])


def get_masked_weights(model_or_weights):
  """Lists every (weight, mask) pair of a model in a stable order.

  Args:
    model_or_weights: a built Keras model/layer containing `MaskedLayer`s, or
      an already computed list of `MaskedWeight` (returned as is).

  Returns:
    A list of `MaskedWeight`; `index` is the position in this list.

  Raises:
    ValueError: if a masked layer is not built yet.
  """
  if isinstance(model_or_weights, (list, tuple)) and all(
      isinstance(w, MaskedWeight) for w in model_or_weights):
    return list(model_or_weights)
  result = []
  for layer in get_masked_layers(model_or_weights):
    pairs = layer.masked_found()
    if not pairs:
      raise ValueError(
          f'Masked layer {layer.name!r} is not built; call the model on an '
          'input (or build it) before using its masks.')
    for found, mask in pairs:
      # The TensorFlow variables (behind a Keras 3 layer's variables).
      result.append(MaskedWeight(
          layer, compat.tf_variable(found.weight), compat.tf_variable(mask),
          _display_name(layer, found, len(pairs) == 1), len(result),
          found.owner, found.weight))
  return result


def check_invariant(model_or_weights) -> Sequence[str]:
  """Names of the masked weights violating `weight * (1 - mask) == 0`."""
  bad = []
  for mw in get_masked_weights(model_or_weights):
    leaked = tf.math.count_nonzero(
        tf.cast(mw.weight, tf.float32) * (1.0 - tf.cast(mw.mask, tf.float32)))
    if int(leaked) != 0:
      bad.append(mw.name)
  return bad
