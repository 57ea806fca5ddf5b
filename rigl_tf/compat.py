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
"""Every private TensorFlow, tf_keras and TFMOT attribute rigl_tf relies on.

rigl_tf needs a few things these libraries expose through no public API:
where an optimizer keeps a variable's slots, a layer's sublayers under their
checkpoint names, the parts of a `MultiHeadAttention`, the graph nodes of a
Functional model, TFMOT's pruning variables, and TensorFlow's tracking
helpers. They are reached here and nowhere
else, and `tests/compat_test.py` checks each assumption against the installed
versions, so that an upgrade that moves one fails in one place, with a test
that names it.
"""

import tensorflow as tf
import tf_keras as keras

# -- TensorFlow's tracking and control-flow helpers (tf.__internal__). -------

# Keeps an attribute out of Keras/TF attribute tracking (decorator).
no_dependency_tracking = (
    tf.__internal__.tracking.no_automatic_dependency_tracking)
# A trackable whose checkpoint dependencies are another object's.
DelegatingTrackableMixin = tf.__internal__.tracking.DelegatingTrackableMixin


def smart_cond(pred, true_fn, false_fn):
  """`tf.cond` that runs one branch in Python when `pred` is a Python bool."""
  return tf.__internal__.smart_cond.smart_cond(pred, true_fn, false_fn)


def separate_collective_keys(offset=100_000):
  """Moves the collective keys of the next `MirroredStrategy` by `offset`.

  TensorFlow numbers the collective groups of every MirroredStrategy of a
  process from the same class attribute; see `strategies.mirrored_strategy`.
  """
  tf.distribute.MirroredStrategy._collective_key_base += offset  # pylint: disable=protected-access


# -- tf_keras optimizers: where a variable's slots are. ----------------------

# Where each tf_keras optimizer keeps its per-weight slots: class -> {list
# attribute: value of a fresh slot}. Slots live in lists indexed through
# `_index_dict[_var_key(var)]`; optional slots (amsgrad, centered, momentum)
# are absent or empty. Fresh slots are 0, except Adagrad's and Ftrl's
# accumulators, which start at `initial_accumulator_value`.
SLOT_LISTS = {
    keras.optimizers.SGD: lambda o: {'momentums': 0.0},
    keras.optimizers.Adam: lambda o: {
        '_momentums': 0.0, '_velocities': 0.0, '_velocity_hats': 0.0},
    keras.optimizers.AdamW: lambda o: {
        '_momentums': 0.0, '_velocities': 0.0, '_velocity_hats': 0.0},
    keras.optimizers.Nadam: lambda o: {'_momentums': 0.0, '_velocities': 0.0},
    keras.optimizers.Adamax: lambda o: {'_m': 0.0, '_u': 0.0},
    keras.optimizers.RMSprop: lambda o: {
        '_velocities': 0.0, '_momentums': 0.0, '_average_gradients': 0.0},
    keras.optimizers.Adagrad: lambda o: {
        '_accumulators': float(o.initial_accumulator_value)},
    keras.optimizers.Adadelta: lambda o: {
        '_accumulated_grads': 0.0, '_accumulated_delta_vars': 0.0},
    keras.optimizers.Ftrl: lambda o: {
        '_accumulators': float(o.initial_accumulator_value),
        '_linears': 0.0},
    keras.optimizers.Lion: lambda o: {'momentums': 0.0},
}


def var_key(optimizer, variable):
  """The key a tf_keras optimizer files `variable` under."""
  return optimizer._var_key(variable)  # pylint: disable=protected-access


def slot_index(optimizer, variable):
  """Position of `variable`'s slots in the optimizer's lists, or None."""
  index_dict = getattr(optimizer, '_index_dict', None) or {}
  return index_dict.get(var_key(optimizer, variable))


def slot_list(optimizer, name):
  """The optimizer's slot list `name` (a `SLOT_LISTS` attribute), or []."""
  return getattr(optimizer, name, None) or []


def run_with_dtensor(optimizer):
  """What `LossScaleOptimizer` reads of the optimizer it wraps."""
  return optimizer._run_with_dtensor  # pylint: disable=protected-access


def dtensor_mesh(optimizer):
  """The optimizer's DTensor mesh, read by `LossScaleOptimizer` too."""
  return optimizer._mesh  # pylint: disable=protected-access


# -- tf_keras layers and models. ---------------------------------------------


def named_sublayers(layer):
  """[(name, sublayer)] of `layer`'s direct sublayers, by checkpoint name.

  The names are those `tf.train.Checkpoint` saves them under (attribute
  names: 'fc1', '_query_dense', 'layer', 'forward_layer'; 'blocks/0' for a
  list attribute), so they are stable from one process to the next. A
  sublayer reachable under two names is listed once, under the first.
  """
  result, seen = [], set()

  def visit(prefix, trackable):
    children = trackable._trackable_children(save_type='checkpoint')  # pylint: disable=protected-access
    for name, child in children.items():
      full = f'{prefix}{name}'
      if isinstance(child, keras.layers.Layer):
        if id(child) not in seen:
          seen.add(id(child))
          result.append((full, child))
      elif isinstance(child, (list, dict)) or type(child).__name__ in (
          'ListWrapper', '_DictWrapper', '_TupleWrapper'):
        visit(f'{full}/', child)

  visit('', layer)
  return result


def replace_sublayer(parent, name, new):
  """Puts `new` where `named_sublayers(parent)` lists `name`.

  A sublayer held in a list or dict attribute ('blocks/0') is replaced by
  assigning the attribute a new container: Keras' tracked lists are
  append-only (an element replaced in place can no longer be saved).

  Args:
    parent: the layer or model.
    name: a name from `named_sublayers` ('fc1', 'blocks/0').
    new: the replacement layer.
  """
  attribute, *path = name.split('/')

  def replaced(holder, path):
    if not path:
      return new
    key, *rest = path
    if isinstance(holder, (list, tuple)) or type(holder).__name__ in (
        'ListWrapper', '_TupleWrapper'):
      items = list(holder)
      items[int(key)] = replaced(items[int(key)], rest)
      return items
    items = dict(holder)
    items[key] = replaced(items[key], rest)
    return items

  setattr(parent, attribute, replaced(getattr(parent, attribute), path))


def attention_parts(layer):
  """{'query', 'key', 'value', 'softmax', 'output'} sublayers of a tf_keras
  `MultiHeadAttention`, or None for another layer."""
  if not isinstance(layer, keras.layers.MultiHeadAttention):
    return None
  # pylint: disable=protected-access
  return {'query': layer._query_dense, 'key': layer._key_dense,
          'value': layer._value_dense, 'softmax': layer._softmax,
          'output': layer._output_dense}
  # pylint: enable=protected-access


def is_graph_network(model):
  """Whether `model` is a Functional model (a graph of layer calls)."""
  return bool(getattr(model, '_is_graph_network', False))


def layer_call_shapes(model, layer):
  """(input shape, output shape) of each call of `layer` in `model`'s graph.

  A Functional or Sequential model keeps one node per call of a layer; a
  layer applied twice (shared weights) has two. [] when `model` is no graph
  of `layer` (a subclassed model), so that callers fall back to the layer's
  own shapes.
  """
  network_nodes = getattr(model, '_network_nodes', None)
  nodes = getattr(layer, '_inbound_nodes', None)
  if not (network_nodes and nodes):
    return []
  return [(_node_shape(node.input_shapes), _node_shape(node.output_shapes))
          for i, node in enumerate(nodes)
          if f'{layer.name}_ib-{i}' in network_nodes]


def _node_shape(shapes):
  if isinstance(shapes, list) or shapes is None:
    return None  # Several inputs or outputs.
  return tuple(shapes)


# -- TFMOT. --------------------------------------------------------------------


def tfmot_pruning_vars(wrapper):
  """(weight, mask, threshold) triples of a TFMOT `PruneLowMagnitude`."""
  return list(wrapper.pruning_vars)
