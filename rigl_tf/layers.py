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
"""Masked Keras layers: the wrapper that owns mask variables, and model tools.

`MaskedLayer` wraps a Keras layer and owns one non-trainable 0/1 `mask`
variable per prunable weight. Masked weights are *stored as zeros* (the
`SparseOptimizer` keeps them so), hence the forward pass is the plain layer
call and the gradient w.r.t. a kernel is the dense gradient RigL needs.

`sparsify(model)` wraps the maskable layers of a Sequential/Functional model,
`strip(model)` turns a masked model back into a plain one whose kernels hold
the zeros, and `get_masked_weights(model)` lists every (weight, mask) pair in
a stable order, which is the "layer index" that keys stateless randomness.
"""

import dataclasses
from typing import Iterable, Sequence

import gin
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from rigl_tf import compat

# Layer class -> attribute names of its maskable weights. Looked up along the
# MRO, so user subclasses of Dense/Conv2D are maskable too.
_MASKABLE_WEIGHTS = {
    keras.layers.Dense: ('kernel',),
    keras.layers.Conv1D: ('kernel',),
    keras.layers.Conv2D: ('kernel',),
    keras.layers.Conv3D: ('kernel',),
    keras.layers.DepthwiseConv1D: ('depthwise_kernel',),
    keras.layers.DepthwiseConv2D: ('depthwise_kernel',),
    keras.layers.SeparableConv1D: ('depthwise_kernel', 'pointwise_kernel'),
    keras.layers.SeparableConv2D: ('depthwise_kernel', 'pointwise_kernel'),
}
# Depthwise kernels are not masked unless asked (`mask_depthwise=True`):
# RigL's MobileNets never mask them, and its FLOP counting keeps them dense
# and outside the sparsity budget (they are ~1% of the weights and cheap).
# So DepthwiseConv layers are not wrapped, and a SeparableConv gets a mask
# on its pointwise kernel only.
_DEPTHWISE_WEIGHT = 'depthwise_kernel'


def _maskable_weight_names(layer, mask_depthwise=False):
  """Names of `layer`'s maskable weights; () when none; None if unknown."""
  for cls in type(layer).__mro__:
    if cls in _MASKABLE_WEIGHTS:
      names = _MASKABLE_WEIGHTS[cls]
      if not mask_depthwise:
        names = tuple(n for n in names if n != _DEPTHWISE_WEIGHT)
      return names
  return None


def is_maskable(layer, mask_depthwise=False):
  """Whether `MaskedLayer` can wrap `layer` (it has prunable weights).

  Args:
    layer: a tf_keras layer.
    mask_depthwise: whether depthwise kernels count as maskable (by default
      they stay dense, as in RigL, so a DepthwiseConv layer is not).

  Returns:
    bool.
  """
  if isinstance(layer, MaskedLayer):
    return False
  names = _maskable_weight_names(layer, mask_depthwise)
  if names is not None:
    return bool(names)
  if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
    return True
  # Built-in layers TFMOT can prune (Embedding, RNNs, ...).
  return compat.tfmot_prunable_weights(layer) is not None


def _prunable_weights(layer, mask_depthwise=False):
  """The built layer's maskable variables, in a fixed order."""
  names = _maskable_weight_names(layer, mask_depthwise)
  if names is not None:
    return [getattr(layer, name) for name in names]
  if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
    return list(layer.get_prunable_weights())
  return compat.tfmot_prunable_weights(layer) or []


def _short_name(variable):
  return variable.name.split('/')[-1].split(':')[0]


@keras.utils.register_keras_serializable(package='rigl_tf')
class MaskedLayer(keras.layers.Wrapper, tfmot.sparsity.keras.PrunableLayer):
  """Wraps a Keras layer and owns a 0/1 mask for each of its prunable weights.

  The wrapper keeps the wrapped layer's name, so per-layer configuration
  (dense layers, custom sparsities) and reports use the familiar names.
  The forward pass is the wrapped layer's own call: masked weights are kept
  at exactly zero by `SparseOptimizer` (call `apply_masks()` after writing
  weights by hand).

  Usable directly in subclassed models:

    self.fc = MaskedLayer(keras.layers.Dense(10))

  Depthwise kernels are not masked unless `mask_depthwise=True` (RigL keeps
  them dense): a SeparableConv gets a mask on its pointwise kernel only, and
  a DepthwiseConv layer can be wrapped only with `mask_depthwise=True`.

  A masked layer is a TFMOT `PrunableLayer` whose prunable weights are its
  masked ones, so `tfmot.sparsity.keras.prune_low_magnitude` can wrap it
  (the `tfmot_gmp` method does).

  Attributes:
    layer: the wrapped layer.
    prunable_weights: the wrapped layer's maskable variables.
    masks: the mask variables, same order and shapes as `prunable_weights`.
  """

  def __init__(self, layer, mask_depthwise=False, **kwargs):
    if not isinstance(layer, keras.layers.Layer):
      raise ValueError(
          f'MaskedLayer wraps a tf_keras layer, got {type(layer).__name__}.')
    if not is_maskable(layer, mask_depthwise):
      raise ValueError(
          f'Layer {layer.name!r} ({type(layer).__name__}) has no maskable '
          'weights: wrap Dense, Conv1D/2D/3D, SeparableConv, a layer '
          'implementing tfmot PrunableLayer, or DepthwiseConv with '
          'mask_depthwise=True (depthwise kernels stay dense by default).')
    kwargs.setdefault('name', layer.name)
    super().__init__(layer, **kwargs)
    self.mask_depthwise = bool(mask_depthwise)
    self._set_mask_list([])
    self._set_dense_init_stds({})

  @compat.no_dependency_tracking
  def _set_dense_init_stds(self, stds):
    self._dense_init_stds = stds

  def record_dense_init_std(self, weight):
    """Remembers the std of `weight`'s dense values (before masking).

    `rigl_tf.masks.init_masks` calls it before zeroing the masked weights:
    RigL's masked variables keep their initial values, and its
    `grow_init='random_normal'` draws with their std, which the zeros stored
    here no longer give.

    Args:
      weight: one of `prunable_weights`, still dense.
    """
    # The first record wins: a later call sees the weight already masked.
    self._dense_init_stds.setdefault(
        _short_name(weight),
        float(tf.math.reduce_std(tf.cast(weight, tf.float32))))

  def dense_init_std(self, weight):
    """The std recorded by `record_dense_init_std`, or None."""
    return self._dense_init_stds.get(_short_name(weight))

  @compat.no_dependency_tracking
  def _set_mask_list(self, masks):
    # Kept out of Keras' attribute tracking: the variables are already
    # tracked once by `add_weight`.
    self._mask_list = list(masks)

  def build(self, input_shape):
    if not self.layer.built:
      with tf.name_scope(self.layer.name):
        self.layer.build(input_shape)
      self.layer.built = True
    masks = []
    for weight in self.prunable_weights:
      masks.append(
          self.add_weight(
              name=f'{_short_name(weight)}_mask',
              shape=weight.shape,
              # The variable's own dtype (float32 under mixed precision,
              # where `weight.dtype` may read as the float16 compute dtype)
              # and no autocasting: 0/1 masks stay exact float32 variables.
              dtype=getattr(weight, 'true_dtype', weight.dtype),
              experimental_autocast=False,
              initializer='ones',
              trainable=False,
              # Masks change only in cross-replica context; if a user writes
              # one in replica context, take the first replica's value.
              synchronization=tf.VariableSynchronization.ON_WRITE,
              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA))
    self._set_mask_list(masks)
    super().build(input_shape)

  @property
  def prunable_weights(self):
    if not self.layer.built:
      return []
    return _prunable_weights(self.layer, self.mask_depthwise)

  @property
  def masks(self):
    return list(self._mask_list)

  def get_prunable_weights(self):
    """TFMOT's `PrunableLayer` interface: the masked weights."""
    return self.prunable_weights

  def get_config(self):
    return {**super().get_config(), 'mask_depthwise': self.mask_depthwise}

  # Set by `SparseOptimizer` for the layers whose masks it keeps.
  managed_by_sparse_optimizer = False

  def call(self, inputs, *args, **kwargs):
    outputs = self.layer(inputs, *args, **kwargs)
    if kwargs.get('training') is True and not self.managed_by_sparse_optimizer:
      # Training with a plain optimizer would move masked weights off zero,
      # silently: fail when the first step takes gradients through this
      # layer. A training-mode forward pass alone (BatchNorm statistics) is
      # fine.
      outputs = tf.nest.map_structure(self._unmanaged_gradient_guard,
                                      outputs)
    return outputs

  def _unmanaged_gradient_guard(self, tensor):
    name = self.name

    @tf.custom_gradient
    def guard(x):
      def grad(upstream):
        del upstream
        raise ValueError(
            f'Masked layer {name!r} is being trained, but no rigl_tf '
            'SparseOptimizer keeps its masks: a plain optimizer would update '
            'masked weights and break the sparsity. Wrap the optimizer: '
            'model.compile(optimizer=rigl_tf.optimizers.SparseOptimizer('
            'keras.optimizers.SGD(...), model, updater), ...); in a custom '
            "loop use that optimizer's apply_gradients. (To take gradients "
            'for another purpose, set `managed_by_sparse_optimizer = True` '
            'on the masked layers.)')
      return tf.identity(x), grad

    return guard(tensor)

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)

  def apply_masks(self):
    """Sets masked weights to zero (`weight *= mask`)."""
    for weight, mask in zip(self.prunable_weights, self.masks):
      weight.assign(weight * mask)


@dataclasses.dataclass(frozen=True)
class MaskedWeight:
  """One maskable weight of a model and its mask.

  Attributes:
    layer: the `MaskedLayer` that owns the mask.
    weight: the weight variable (a kernel).
    mask: its 0/1 mask variable.
    name: a stable, readable name: the layer name, plus `/<weight>` when the
      layer has several maskable weights.
    index: position in the model's stable order; keys stateless randomness.
  """
  layer: MaskedLayer
  weight: tf.Variable
  mask: tf.Variable
  name: str
  index: int

  @property
  def size(self):
    return int(self.weight.shape.num_elements())


def walk_layers(layer):
  """Yields `layer`'s sublayers depth-first in their tracked order."""
  for child in compat.direct_sublayers(layer):
    yield child
    if not isinstance(child, MaskedLayer):
      yield from walk_layers(child)


def get_masked_layers(model):
  """Every `MaskedLayer` inside `model` (recursively), in a stable order."""
  if isinstance(model, MaskedLayer):
    return [model]
  seen = set()
  result = []
  for layer in walk_layers(model):
    if isinstance(layer, MaskedLayer) and id(layer) not in seen:
      seen.add(id(layer))
      result.append(layer)
  return result


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
    if not layer.built:
      raise ValueError(
          f'Masked layer {layer.name!r} is not built; call the model on an '
          'input (or build it) before using its masks.')
    pairs = list(zip(layer.prunable_weights, layer.masks))
    for weight, mask in pairs:
      name = layer.name
      if len(pairs) > 1:
        name = f'{layer.name}/{_short_name(weight)}'
      result.append(MaskedWeight(layer, weight, mask, name, len(result)))
  return result


def _copy_layer(layer):
  return layer.__class__.from_config(layer.get_config())


def check_graph_model(model, what='sparsify()/strip()',
                      wrapper='rigl_tf.layers.MaskedLayer'):
  """Raises ValueError unless `model` is a Sequential or Functional model.

  Args:
    model: the model a function is about to clone.
    what: the function(s), for the message.
    wrapper: the layer wrapper a subclassed model can use directly.
  """
  if not isinstance(model, keras.Model):
    raise ValueError(f'Expected a tf_keras Model, got {type(model).__name__}.')
  if not (isinstance(model, keras.Sequential)
          or compat.is_graph_network(model)):
    raise ValueError(
        f'{model.name!r} is a subclassed model: {what} clone Sequential and '
        f'Functional models only. In a subclassed model, wrap layers with '
        f'{wrapper} directly.')


def _copy_weights(source_model, target_model):
  """Copies weights layer by layer (by name) from source to target."""
  targets = {layer.name: layer for layer in target_model.layers}
  for layer in source_model.layers:
    if not layer.weights or layer.name not in targets:
      continue
    target = targets[layer.name]
    if isinstance(target, keras.Model) and isinstance(layer, keras.Model):
      _copy_weights(layer, target)
    elif isinstance(target, MaskedLayer) and not isinstance(
        layer, MaskedLayer):
      target.layer.set_weights(layer.get_weights())
    elif isinstance(layer, MaskedLayer) and not isinstance(
        target, MaskedLayer):
      masked = [
          (w * m).numpy() for w, m in zip(layer.prunable_weights, layer.masks)
      ]
      by_ref = {w.ref(): v for w, v in zip(layer.prunable_weights, masked)}
      values = [
          by_ref.get(w.ref(), w.numpy()) for w in layer.layer.weights
      ]
      target.set_weights(values)
    else:
      target.set_weights(layer.get_weights())


@gin.configurable('sparsify', allowlist=['mask_depthwise'])
def sparsify(model, dense_layers: Iterable[str] = (), mask_depthwise=False):
  """Returns a copy of `model` whose maskable layers are `MaskedLayer`s.

  Weights are copied from `model` when it is built; all masks start at ones
  (dense). Use `rigl_tf.masks.init_masks` to draw sparse masks.

  Args:
    model: a tf_keras Sequential or Functional model (nested models are
      sparsified recursively).
    dense_layers: names of maskable layers to leave unwrapped (always dense,
      e.g. the first layer).
    mask_depthwise: also mask depthwise kernels (default: they stay dense
      and outside the sparsity budget, as in RigL). gin: `sparsify.
      mask_depthwise = True`.

  Returns:
    The new model.

  Raises:
    ValueError: for a subclassed model or a name in `dense_layers` that is
      not a layer of the model.
  """
  check_graph_model(model)
  dense_layers = set(dense_layers)
  all_names = set()

  def collect(m):
    for layer in m.layers:
      all_names.add(layer.name)
      if isinstance(layer, keras.Model):
        collect(layer)

  collect(model)
  unknown = sorted(dense_layers - all_names)
  if unknown:
    raise ValueError(
        f'dense_layers names unknown layers {unknown}; the model has '
        f'{sorted(all_names)}.')

  def clone_fn(layer):
    if isinstance(layer, keras.Model):
      return _sparsify_clone(layer)
    if layer.name in dense_layers or not is_maskable(layer, mask_depthwise):
      return _copy_layer(layer)
    return MaskedLayer(_copy_layer(layer), mask_depthwise=mask_depthwise)

  def _sparsify_clone(m):
    return keras.models.clone_model(m, clone_function=clone_fn)

  new_model = _sparsify_clone(model)
  if model.built:
    if not new_model.built:
      new_model.build(model.input_shape)
    _copy_weights(model, new_model)
  return new_model


def strip(model):
  """Returns a plain Keras model: wrappers removed, kernels holding zeros."""
  check_graph_model(model)

  def clone_fn(layer):
    if isinstance(layer, keras.Model):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if isinstance(layer, MaskedLayer):
      return _copy_layer(layer.layer)
    return _copy_layer(layer)

  new_model = keras.models.clone_model(model, clone_function=clone_fn)
  if model.built:
    if not new_model.built:
      new_model.build(model.input_shape)
    _copy_weights(model, new_model)
  return new_model


def check_invariant(model_or_weights) -> Sequence[str]:
  """Names of the masked weights violating `weight * (1 - mask) == 0`."""
  bad = []
  for mw in get_masked_weights(model_or_weights):
    leaked = tf.math.count_nonzero(
        tf.cast(mw.weight, tf.float32) * (1.0 - tf.cast(mw.mask, tf.float32)))
    if int(leaked) != 0:
      bad.append(mw.name)
  return bad
