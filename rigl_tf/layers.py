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
"""Sparsifying a Keras model: masks on every maskable weight it holds.

`sparsify(model)` puts a `MaskedLayer` around every layer that holds a
maskable weight (`rigl_tf.maskable`), at any depth: a Dense, a custom layer
with Dense sublayers, a `MultiHeadAttention` block (its query, key, value
and output projections), `TimeDistributed`, `Bidirectional` RNNs. A
Sequential or Functional model is cloned (weights copied); a subclassed
model is sparsified in place. `strip(model)` turns a masked model back into
a plain one whose kernels hold the zeros. A kernel-like weight of a layer
class rigl_tf does not know is left dense with one warning that names it and
`register_maskable`.

The wrapper, the stable list of (weight, mask) pairs and the invariant check
live in `rigl_tf.masked_layer` and are re-exported here.
"""

import math
from typing import Iterable

from absl import logging
import gin

from rigl_tf import compat
from rigl_tf import flavours
from rigl_tf import maskable
from rigl_tf.maskable import register_maskable  # noqa: F401
from rigl_tf.maskable import unregister_maskable  # noqa: F401
from rigl_tf.masked_layer import MASKED_LAYER_CLASSES
from rigl_tf.masked_layer import Keras3MaskedLayer  # noqa: F401
from rigl_tf.masked_layer import MaskedLayer
from rigl_tf.masked_layer import MaskedWeight  # noqa: F401

# The masked-layer API, re-exported: `layers.MaskedLayer`, ...
from rigl_tf.masked_layer import check_invariant  # noqa: F401
from rigl_tf.masked_layer import get_masked_layers  # noqa: F401
from rigl_tf.masked_layer import get_masked_weights  # noqa: F401
from rigl_tf.masked_layer import walk_layers  # noqa: F401


def is_maskable(layer, mask_depthwise=False, mask_recurrent=True):
  """Whether `MaskedLayer` can wrap `layer` (it holds a maskable weight).

  Args:
    layer: a tf_keras layer.
    mask_depthwise: whether depthwise kernels count as maskable (by default
      they stay dense, as in RigL, so a DepthwiseConv layer is not).
    mask_recurrent: whether RNN recurrent kernels count.

  Returns:
    bool.
  """
  if isinstance(layer, MASKED_LAYER_CLASSES):
    return False
  return maskable.is_maskable(
      layer, maskable.Options(mask_depthwise, mask_recurrent),
      stop=MASKED_LAYER_CLASSES)


def _copy_layer(layer):
  return layer.__class__.from_config(layer.get_config())


def _keras_of(model):
  """The Keras module (either flavour) of a model.

  Raises:
    ValueError: if `model` is no Keras model (or a Keras 3 one on another
      backend than TensorFlow).
  """
  flavour = flavours.of(model)
  keras_module = flavours.module(flavour) if flavour else None
  if keras_module is None or not isinstance(model, keras_module.Model):
    raise ValueError(
        'Expected a Keras model (tf_keras, or Keras 3 with the TensorFlow '
        f'backend), got {type(model).__name__}.')
  return keras_module


def check_graph_model(model, what, remedy):
  """Raises ValueError unless `model` is a Sequential or Functional model.

  Args:
    model: the model a function is about to clone.
    what: the function, for the message ('tfmot_gmp').
    remedy: what to do with a subclassed model instead (a sentence).
  """
  _keras_of(model)
  if not _is_graph(model):
    raise ValueError(
        f'{model.name!r} is a subclassed model: {what} clones Sequential and '
        f'Functional models only. {remedy}')


def _copy_weights(source_model, target_model):
  """Copies weights layer by layer (by name) from source to target."""
  model_class = _keras_of(source_model).Model
  targets = {layer.name: layer for layer in target_model.layers}
  for layer in source_model.layers:
    if not layer.weights or layer.name not in targets:
      continue
    target = targets[layer.name]
    if isinstance(target, model_class) and isinstance(layer, model_class):
      _copy_weights(layer, target)
    elif isinstance(target, MASKED_LAYER_CLASSES) and not isinstance(
        layer, MASKED_LAYER_CLASSES):
      target.layer.set_weights(layer.get_weights())
    elif isinstance(layer, MASKED_LAYER_CLASSES) and not isinstance(
        target, MASKED_LAYER_CLASSES):
      by_id = {id(w): (compat.tf_variable(w) * compat.tf_variable(m)).numpy()
               for w, m in zip(layer.prunable_weights, layer.masks)}
      values = [by_id.get(id(w), compat.tf_variable(w).numpy())
                for w in layer.layer.weights]
      target.set_weights(values)
    else:
      target.set_weights(layer.get_weights())


@gin.configurable('sparsify', allowlist=['mask_depthwise', 'mask_recurrent'])
def sparsify(model, dense_layers: Iterable[str] = (), mask_depthwise=False,
             mask_recurrent=True):
  """`model` with a `MaskedLayer` around every layer holding a maskable weight.

  A Sequential or Functional model is cloned: the new model's layers are
  copies, weights copied from `model` when it is built. A subclassed model
  is sparsified in place (call it on an input once before): each direct
  sublayer that holds a maskable weight is replaced by a `MaskedLayer`
  around it, and the same model is returned. All masks start at ones
  (dense); `rigl_tf.masks.init_masks` draws sparse ones. A kernel-like
  weight that no rule masks gets one warning line (see `register_maskable`).

  Args:
    model: a Keras model (tf_keras, or Keras 3 on TensorFlow).
    dense_layers: names of layers to leave unwrapped (always dense, e.g.
      the first layer): top-level layers, or layers of nested Sequential or
      Functional models.
    mask_depthwise: also mask depthwise kernels (default: they stay dense
      and outside the sparsity budget, as in RigL). gin:
      `sparsify.mask_depthwise = True`.
    mask_recurrent: mask RNN recurrent kernels too (default, as TFMOT
      does); False keeps them dense and outside the sparsity budget. gin:
      `sparsify.mask_recurrent = False`.

  Returns:
    The sparsified model.

  Raises:
    ValueError: for an unbuilt subclassed model, or a name in
      `dense_layers` that is not a layer of the model.
  """
  _keras_of(model)
  dense_layers = set(dense_layers)
  options = dict(mask_depthwise=mask_depthwise, mask_recurrent=mask_recurrent)
  if _is_graph(model):
    _check_names(model, dense_layers)
    new_model = _sparsify_clone(model, dense_layers, options)
  else:
    new_model = _sparsify_in_place(model, dense_layers, options)
  for line in unmaskable_warnings(new_model):
    logging.warning('%s', line)
  return new_model


def _is_graph(model):
  return isinstance(model, flavours.classes('Sequential')) or (
      compat.is_graph_network(model))


def _check_names(model, dense_layers):
  all_names = set()

  def collect(m):
    for layer in m.layers:
      all_names.add(layer.name)
      if isinstance(layer, flavours.classes('Model')) and _is_graph(layer):
        collect(layer)

  collect(model)
  unknown = sorted(dense_layers - all_names)
  if unknown:
    raise ValueError(
        f'dense_layers names unknown layers {unknown}; the model has '
        f'{sorted(all_names)}.')


def _sparsify_clone(model, dense_layers, options):
  keras = _keras_of(model)

  def clone_fn(layer):
    if isinstance(layer, keras.Model) and _is_graph(layer):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if layer.name in dense_layers or not is_maskable(layer, **options):
      return _copy_layer(layer)
    return MaskedLayer(_copy_layer(layer), **options)

  new_model = keras.models.clone_model(model, clone_function=clone_fn)
  if model.built:
    if not new_model.built:
      new_model.build(model.input_shape)
    _copy_weights(model, new_model)
  return new_model


def _sparsify_in_place(model, dense_layers, options):
  if not model.built or not model.weights:
    raise ValueError(
        f'{model.name!r} is a subclassed model that was never called: call '
        'it on an input once (model(x)) so that its weights exist, then '
        'sparsify it (in place).')
  children = compat.named_sublayers(model)
  unknown = sorted(dense_layers - {child.name for _, child in children})
  if unknown:
    raise ValueError(
        f'dense_layers names unknown layers {unknown}; the direct sublayers '
        f'of {model.name!r} are {sorted(c.name for _, c in children)}.')
  for name, child in children:
    if (isinstance(child, MASKED_LAYER_CLASSES) or child.name in dense_layers
        or not is_maskable(child, **options)):
      continue
    compat.replace_sublayer(model, name, MaskedLayer(child, **options))
  return model


def unmaskable_warnings(model):
  """One line per kernel-like weight of `model` that no rule masks."""
  lines = []
  for names, layer, weight in maskable.unmaskable_kernels(model):
    short = names[-1]
    lines.append(
        f'rigl_tf: {"/".join(names)} (a {tuple(weight.shape)} weight of '
        f'{type(layer).__name__}) is not masked and stays dense: rigl_tf has '
        f'no rule for {type(layer).__name__}. To mask it: '
        f'rigl_tf.layers.register_maskable({type(layer).__name__}, '
        f"['{short}']).")
  return lines


def strip(model):
  """A plain Keras model: wrappers removed, kernels holding the zeros.

  A Sequential or Functional model is cloned. A subclassed model (sparsified
  in place) is unwrapped in place and returned: its masks are gone
  afterwards.
  """
  keras = _keras_of(model)
  if not _is_graph(model):
    for name, child in compat.named_sublayers(model):
      if isinstance(child, MASKED_LAYER_CLASSES):
        child.apply_masks()
        compat.replace_sublayer(model, name, child.layer)
    return model

  def clone_fn(layer):
    if isinstance(layer, keras.Model) and _is_graph(layer):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if isinstance(layer, MASKED_LAYER_CLASSES):
      return _copy_layer(layer.layer)
    return _copy_layer(layer)

  new_model = keras.models.clone_model(model, clone_function=clone_fn)
  if model.built:
    if not new_model.built:
      new_model.build(model.input_shape)
    _copy_weights(model, new_model)
  return new_model


# Layer classes whose weights the inventory sums as 'normalization'.
_NORMALIZATION = flavours.classes(
    'layers.BatchNormalization', 'layers.LayerNormalization',
    'layers.GroupNormalization', 'layers.UnitNormalization')


def _vid(variable):
  """One identity for a variable, also for a Keras 3 variable and the
  TensorFlow variable behind it (what a `MaskedWeight` holds)."""
  return id(compat.tf_variable(variable))


def _size(weight):
  return math.prod(int(d) for d in weight.shape)


def _owned_weights(layer, names=()):
  """[(layer names path, owner, weight)] of every weight below `layer`,
  each listed once, under the layer that creates it."""
  children = compat.named_sublayers(layer)
  below = {id(w) for _, c in children for w in c.weights}
  result = [(names, layer, w) for w in layer.weights if id(w) not in below]
  for _, child in children:
    # A wrapper keeps its layer's name: no repeat in the path.
    same = isinstance(layer, MASKED_LAYER_CLASSES) and child is layer.layer
    result += _owned_weights(child, names if same else names + (child.name,))
  return result


def _dense_reason(found, masked_options):
  """Why a maskable weight is not masked."""
  short = found.own[-1]
  if short == maskable.DEPTHWISE and not masked_options.depthwise:
    return 'dense by default (depthwise; mask_depthwise=True masks it)'
  if short == maskable.RECURRENT and not masked_options.recurrent:
    return 'dense by option (mask_recurrent=False)'
  return 'dense by config (not wrapped: dense_layers, or left out)'


def weight_inventory(model):
  """Every weight of `model`, accounted for once.

  Args:
    model: a built tf_keras model (masked or not).

  Returns:
    dict with
      'masked': the `MaskedWeight`s;
      'dense': [{name, weights, reason}] for each kernel that stays dense:
        a maskable one left out ('dense by config', depthwise or recurrent
        kernels by default or option), or one of a layer class rigl_tf has
        no rule for ('not maskable: <class>');
      'other': {'bias', 'normalization', 'other'} -> number of weights
        (masks themselves excluded).
  """
  masked = get_masked_weights(model)
  done = {_vid(mw.weight) for mw in masked} | {_vid(mw.mask) for mw in masked}
  wrapped_options = {}
  for layer in get_masked_layers(model):
    for found in maskable.find(layer.layer, maskable.Options(True, True)):
      wrapped_options[_vid(found.weight)] = layer.options
  dense = []
  for found in maskable.find(model, maskable.Options(True, True)):
    if _vid(found.weight) in done:
      continue
    done.add(_vid(found.weight))
    reason = _dense_reason(found, wrapped_options.get(
        _vid(found.weight), maskable.Options(True, True)))
    names = [n for n in found.names if n != 'cell']
    names = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    dense.append({'name': '/'.join(names),
                  'weights': _size(found.weight),
                  'reason': reason})
  for names, layer, weight in maskable.unmaskable_kernels(
      model, stop=MASKED_LAYER_CLASSES) + _wrapped_unmaskable(model):
    if _vid(weight) not in done:
      done.add(_vid(weight))
      dense.append({'name': '/'.join(names),
                    'weights': _size(weight),
                    'reason': f'not maskable: {type(layer).__name__}'})
  other = {'bias': 0, 'normalization': 0, 'other': 0}
  for _, layer, weight in _owned_weights(model):
    if _vid(weight) in done:
      continue
    done.add(_vid(weight))
    kind = ('normalization' if isinstance(layer, _NORMALIZATION) else
            'bias' if maskable.short_name(weight).endswith('bias') else
            'other')
    other[kind] += _size(weight)
  return {'masked': masked, 'dense': dense, 'other': other}


def _wrapped_unmaskable(model):
  """`unmaskable_kernels` inside the masked layers (named from the model)."""
  result = []
  for layer in get_masked_layers(model):
    result += [((layer.name, *names), owner, weight)
               for names, owner, weight in maskable.unmaskable_kernels(
                   layer.layer)]
  return result
