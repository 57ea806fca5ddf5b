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

rigl_tf needs a few things these libraries (and Keras 3, the other flavour
of `rigl_tf.flavours`) expose through no public API:
where an optimizer keeps a variable's slots, a layer's sublayers under their
checkpoint names, the parts of a `MultiHeadAttention`, the graph nodes of a
Functional model, TFMOT's pruning variables, and TensorFlow's tracking
helpers. They are reached here and nowhere
else, and `tests/compat_test.py` checks each assumption against the installed
versions, so that an upgrade that moves one fails in one place, with a test
that names it.
"""

import contextlib
import inspect

import keras as keras3
import tensorflow as tf
import tf_keras as keras

from rigl_tf import flavours

# -- TensorFlow's tracking and control-flow helpers (tf.__internal__). -------

# Keeps an attribute out of Keras/TF attribute tracking (decorator).
no_dependency_tracking = (
    tf.__internal__.tracking.no_automatic_dependency_tracking)
# A trackable whose checkpoint dependencies are another object's.
DelegatingTrackableMixin = tf.__internal__.tracking.DelegatingTrackableMixin


LOSS_SCALE_OPTIMIZERS = (keras.mixed_precision.LossScaleOptimizer,
                         keras3.optimizers.LossScaleOptimizer)


def scaled_loss(optimizer, loss):
  """`loss` times the loss scale of a `LossScaleOptimizer` (either flavour),
  or `loss` for another optimizer."""
  if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
    return optimizer.get_scaled_loss(loss)
  if isinstance(optimizer, keras3.optimizers.LossScaleOptimizer):
    return optimizer.scale_loss(loss)
  return loss


def unscaled_gradients(optimizer, grads):
  """Gradients of a `scaled_loss`, as its optimizer's `apply_gradients`
  takes them: tf_keras' unscales them first, Keras 3's unscales itself."""
  if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
    return optimizer.get_unscaled_gradients(grads)
  return grads


def smart_cond(pred, true_fn, false_fn):
  """`tf.cond` that runs one branch in Python when `pred` is a Python bool."""
  return tf.__internal__.smart_cond.smart_cond(pred, true_fn, false_fn)


def separate_collective_keys(offset=100_000):
  """Moves the collective keys of the next `MirroredStrategy` by `offset`.

  TensorFlow numbers the collective groups of every MirroredStrategy of a
  process from the same class attribute; see `strategies.mirrored_strategy`.
  """
  tf.distribute.MirroredStrategy._collective_key_base += offset  # pylint: disable=protected-access


# -- Optimizers of both flavours: where a variable's slots are. -------------

# Where each optimizer keeps its per-weight slots: class name -> {list
# attribute: value of a fresh slot}, for the tf_keras class and the Keras 3
# class of that name alike (an attribute one flavour lacks reads as no
# slots: Lion's list is `momentums` in tf_keras, `_momentums` in Keras 3).
# Slots live in lists indexed by the variable's position (`slot_index`);
# optional slots (amsgrad, centered, momentum) are absent or empty. Fresh
# slots are 0, except Adagrad's and Ftrl's accumulators, which start at
# `initial_accumulator_value`.
_SLOT_LISTS_BY_NAME = {
    'SGD': lambda o: {'momentums': 0.0},
    'Adam': lambda o: {
        '_momentums': 0.0, '_velocities': 0.0, '_velocity_hats': 0.0},
    'AdamW': lambda o: {
        '_momentums': 0.0, '_velocities': 0.0, '_velocity_hats': 0.0},
    'Nadam': lambda o: {'_momentums': 0.0, '_velocities': 0.0},
    'Adamax': lambda o: {'_m': 0.0, '_u': 0.0},
    'RMSprop': lambda o: {
        '_velocities': 0.0, '_momentums': 0.0, '_average_gradients': 0.0},
    'Adagrad': lambda o: {
        '_accumulators': float(o.initial_accumulator_value)},
    'Adadelta': lambda o: {
        '_accumulated_grads': 0.0, '_accumulated_delta_vars': 0.0},
    'Ftrl': lambda o: {
        '_accumulators': float(o.initial_accumulator_value),
        '_linears': 0.0},
    'Lion': lambda o: {'momentums': 0.0, '_momentums': 0.0},
}
SLOT_LISTS = {
    cls: _SLOT_LISTS_BY_NAME[path.split('.')[-1]]
    for cls, path in flavours.class_pairs(
        [f'optimizers.{name}' for name in _SLOT_LISTS_BY_NAME])
}


def var_key(optimizer, variable):
  """The key an optimizer (either flavour) files `variable` under."""
  return optimizer._var_key(variable)  # pylint: disable=protected-access


def slot_index(optimizer, variable):
  """Position of `variable`'s slots in the optimizer's lists, or None."""
  if flavours.is_keras3(optimizer):
    index_dict = getattr(optimizer, '_trainable_variables_indices', None)
  else:
    index_dict = getattr(optimizer, '_index_dict', None)
  return (index_dict or {}).get(var_key(optimizer, variable))


def slot_list(optimizer, name):
  """The optimizer's slot list `name` (a `SLOT_LISTS` attribute), or []."""
  return getattr(optimizer, name, None) or []


def tf_variable(variable):
  """The `tf.Variable` behind a Keras 3 variable; any other is returned.

  rigl_tf's algorithms read and write TensorFlow variables (and, under
  `tf.distribute`, their mirrored copies through `strategy.extended.update`).
  A Keras 3 variable of the TensorFlow backend holds one in `_value`
  (`value` may be an autocast copy).
  """
  if isinstance(variable, keras3.Variable):
    return variable._value  # pylint: disable=protected-access
  return variable


def keras3_checkpoint_view(variables, named=True, **trackables):
  """A trackable saving Keras 3 `variables` in order, and `trackables`.

  TensorFlow's checkpoint walk of Keras 3 objects misses sublayers held in
  lists, and fails on some attribute dicts; and Keras 3's variable paths
  number auto-named objects per process ('sgd_1'). A checkpoint of a Keras
  3 model or optimizer saves its variables under `variables/<i>_<name>`
  (`named`: the variable's name, e.g. 'kernel_mask', so that a checkpoint
  of another model is refused) or `variables/<i>` (an optimizer's slots are
  named by their model variable's path), and the named `trackables` (e.g.
  a method's state).
  """
  view = tf.__internal__.tracking.AutoTrackable()
  unique = list({id(v): v for v in variables}.values())
  view.variables = {(f'{i}_{v.name}' if named else str(i)): tf_variable(v)
                    for i, v in enumerate(unique)}
  for name, trackable in trackables.items():
    setattr(view, name, trackable)
  return view


def keras3_built_variables(optimizer):
  """The variables a Keras 3 optimizer was built for, in order (what its
  `apply(grads)` pairs gradients with)."""
  return optimizer._trainable_variables  # pylint: disable=protected-access


def keras3_all_reduce(optimizer, grads_and_vars):
  """[(gradient summed over replicas, variable)], as a Keras 3 optimizer
  sums them in `apply` (in replica context; as is outside one)."""
  return optimizer._all_reduce_sum_gradients(grads_and_vars)  # pylint: disable=protected-access


@contextlib.contextmanager
def gradients_already_reduced(optimizer):
  """Inside: a Keras 3 optimizer's `apply` sums no gradients over replicas.

  tf_keras optimizers take `skip_gradients_aggregation=True` for gradients
  that are all-reduced already; a Keras 3 one all-reduces in
  `_all_reduce_sum_gradients` whenever it runs in a replica context, so the
  instance's method is replaced while the step is traced.
  """
  optimizer._all_reduce_sum_gradients = lambda grads_and_vars: list(  # pylint: disable=protected-access
      grads_and_vars)
  try:
    yield
  finally:
    del optimizer._all_reduce_sum_gradients  # pylint: disable=protected-access


def run_with_dtensor(optimizer):
  """What `LossScaleOptimizer` reads of the optimizer it wraps."""
  return optimizer._run_with_dtensor  # pylint: disable=protected-access


def dtensor_mesh(optimizer):
  """The optimizer's DTensor mesh, read by `LossScaleOptimizer` too."""
  return optimizer._mesh  # pylint: disable=protected-access


# -- tf_keras layers and models. ---------------------------------------------


def named_sublayers(layer):
  """[(name, sublayer)] of `layer`'s direct sublayers, by attribute name.

  tf_keras: the names `tf.train.Checkpoint` saves them under (attribute
  names: 'fc1', '_query_dense', 'layer', 'forward_layer'; 'blocks/0' for a
  list attribute). Keras 3: the same attribute names, read from the layer's
  attributes (Keras 3 keeps list attributes out of TensorFlow's tracking);
  a sublayer held nowhere else is named by its place in the layer's
  tracker ('_layers/0': a Sequential model's layers). The names are stable
  from one process to the next. A sublayer reachable under two names is
  listed once, under the first.
  """
  if flavours.is_keras3(layer):
    return _keras3_named_sublayers(layer)
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


# Keras 3 layer attributes that hold Keras' own bookkeeping, not sublayers.
_KERAS3_TRACKER_STORE = '_layers'


def _keras3_named_sublayers(layer):
  result, seen = [], set()

  def add(name, value):
    if isinstance(value, keras3.layers.Layer):
      if id(value) not in seen:
        seen.add(id(value))
        result.append((name, value))
    elif isinstance(value, (list, tuple)):
      for i, item in enumerate(value):
        add(f'{name}/{i}', item)
    elif isinstance(value, dict):
      for key, item in value.items():
        add(f'{name}/{key}', item)

  tracked = {id(child) for child in layer._layers}  # pylint: disable=protected-access
  for name, value in vars(layer).items():
    if name != _KERAS3_TRACKER_STORE and not name.startswith('_self_'):
      if not isinstance(value, keras3.layers.Layer) or id(value) in tracked:
        add(name, value)
  add(_KERAS3_TRACKER_STORE, list(layer._layers))  # pylint: disable=protected-access
  return result


def replace_sublayer(parent, name, new):
  """Puts `new` where `named_sublayers(parent)` lists `name`.

  A sublayer held in a list or dict attribute ('blocks/0') is replaced by
  assigning the attribute a new container: tf_keras' tracked lists are
  append-only (an element replaced in place can no longer be saved). In
  Keras 3, the layer's tracker lists `new` in the old one's place too.

  Args:
    parent: the layer or model.
    name: a name from `named_sublayers` ('fc1', 'blocks/0').
    new: the replacement layer.
  """
  attribute, *path = name.split('/')
  if flavours.is_keras3(parent):
    old = dict(named_sublayers(parent))[name]
    parent._tracker.replace_tracked_value('layers', old, new)  # pylint: disable=protected-access
    if attribute == _KERAS3_TRACKER_STORE:
      return

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


def keras3_untracked():
  """Attributes set inside are kept out of a Keras 3 layer's tracker."""
  return keras3.src.utils.tracking.DotNotTrackScope()


@contextlib.contextmanager
def keras3_unlocked(layer):
  """Lets a built Keras 3 layer add a variable (a mask of a weight its
  wrapped layer made in its first call): Keras 3 locks a layer's state
  once it is built."""
  tracker = layer._tracker  # pylint: disable=protected-access
  locked = tracker.locked
  tracker.unlock()
  try:
    yield
  finally:
    if locked:
      tracker.lock()


def builds_from_one_shape(layer):
  """Whether a Keras 3 layer has a `build` of its own that takes one input
  shape (not `MultiHeadAttention`'s query, value and key shapes; a layer
  without one makes its sublayers' weights in its first call)."""
  if type(layer).build is keras3.layers.Layer.build:
    return False
  parameters = [
      p for p in inspect.signature(layer.build).parameters.values()
      if p.default is inspect.Parameter.empty
      and p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
  return len(parameters) <= 1


def attention_parts(layer):
  """{'query', 'key', 'value', 'softmax', 'output'} sublayers of a
  `MultiHeadAttention` (either flavour), or None for another layer."""
  if not isinstance(layer, flavours.classes('layers.MultiHeadAttention')):
    return None
  # pylint: disable=protected-access
  return {'query': layer._query_dense, 'key': layer._key_dense,
          'value': layer._value_dense, 'softmax': layer._softmax,
          'output': layer._output_dense}
  # pylint: enable=protected-access


def is_graph_network(model):
  """Whether `model` is a Functional model (a graph of layer calls)."""
  if flavours.is_keras3(model):
    return isinstance(model, keras3.src.models.functional.Functional)
  return bool(getattr(model, '_is_graph_network', False))


def keras3_input_spec(model):
  """(args, kwargs) of TensorSpecs of a built Keras 3 model's input, as
  tf_keras' `save_spec` gives them; None for a model never built."""
  if getattr(model, 'inputs', None):
    specs = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]
  else:
    shapes = model._build_shapes_dict  # pylint: disable=protected-access
    if not shapes or len(shapes) != 1:
      return None
    (shape,) = shapes.values()
    specs = [tf.TensorSpec(shape, model.input_dtype)]
  return (specs if len(specs) > 1 else specs[0],), {}


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
