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
"""Which weights of a Keras layer tree can be masked, and their fan-in/out.

A layer's maskable weights, by its class (looked up along the MRO, so user
subclasses inherit):

* Dense, EinsumDense, Conv1D/2D/3D (and their transposes): the kernel;
* SeparableConv: the pointwise kernel (the depthwise one with
  `mask_depthwise`); DepthwiseConv: its kernel only with `mask_depthwise`;
* Embedding: the embedding matrix;
* SimpleRNN, GRU, LSTM (any `keras.layers.RNN`): each cell's input kernel
  and its recurrent kernel (that one not with `recurrent=False`);
* a class registered with `register_maskable(cls, ['kernel', ...])`, or a
  layer implementing TFMOT's `PrunableLayer.get_prunable_weights`.

Any other layer is a container: its sublayers are walked (custom layers,
`MultiHeadAttention` and its EinsumDense projections, `TimeDistributed`,
`Bidirectional`, models inside models). A kernel-like weight (two or more
dimensions, trainable) that such a layer owns itself is *not maskable*:
`unmaskable_kernels` lists it, so that callers can say so.
"""

import dataclasses
import math
import re
from typing import Sequence

import tensorflow_model_optimization as tfmot

from rigl_tf import compat
from rigl_tf import flavours

DEPTHWISE = 'depthwise_kernel'
RECURRENT = 'recurrent_kernel'

# Layer class name -> attribute names of its maskable weights; the table
# holds the classes of both Keras flavours (`rigl_tf.flavours`).
_BUILT_IN_BY_NAME = {
    'Dense': ('kernel',),
    'EinsumDense': ('kernel',),
    'Conv1D': ('kernel',),
    'Conv2D': ('kernel',),
    'Conv3D': ('kernel',),
    'DepthwiseConv1D': (DEPTHWISE,),
    'DepthwiseConv2D': (DEPTHWISE,),
    'SeparableConv1D': (DEPTHWISE, 'pointwise_kernel'),
    'SeparableConv2D': (DEPTHWISE, 'pointwise_kernel'),
    'Embedding': ('embeddings',),
    'LocallyConnected1D': ('kernel',),
    'LocallyConnected2D': ('kernel',),
}
_BUILT_IN = {
    cls: _BUILT_IN_BY_NAME[path.split('.')[-1]]
    for cls, path in flavours.class_pairs(
        [f'layers.{name}' for name in _BUILT_IN_BY_NAME])
}
_REGISTERED = {}


def register_maskable(layer_class, weight_names):
  """Declares the maskable weights of a custom layer class (and subclasses).

    layers.register_maskable(MyLayer, ['kernel', 'gate_kernel'])

  Args:
    layer_class: a Keras layer class (either flavour) that owns the weights
      itself.
    weight_names: attribute names of its maskable weights, in the order
      their masks are made.

  Raises:
    TypeError: if `layer_class` is not a tf_keras layer class.
  """
  if not (isinstance(layer_class, type)
          and issubclass(layer_class, flavours.classes('layers.Layer'))):
    raise TypeError(f'register_maskable takes a Keras layer class, got '
                    f'{layer_class!r}.')
  _REGISTERED[layer_class] = tuple(weight_names)


def unregister_maskable(layer_class):
  """Forgets a `register_maskable` (for tests)."""
  _REGISTERED.pop(layer_class, None)


@dataclasses.dataclass(frozen=True)
class Options:
  """Which optional kernels are masked.

  Attributes:
    depthwise: depthwise kernels (RigL keeps them dense and outside the
      budget).
    recurrent: the recurrent kernels of RNN cells.
  """
  depthwise: bool = False
  recurrent: bool = True


@dataclasses.dataclass(frozen=True)
class Found:
  """One maskable weight found in a layer tree.

  Attributes:
    path: attribute path from the walked layer (checkpoint names, e.g.
      ('_query_dense', 'kernel')).
    names: the same path in layer names (e.g. ('query', 'kernel')).
    weight: the variable.
    owner: the layer that owns it (an RNN layer for its cells' kernels).
    own: the path's end inside `owner` (('kernel',), ('cell', 'kernel')).
  """
  path: tuple
  names: tuple
  weight: object
  owner: object
  own: tuple = ()

  @property
  def owner_names(self):
    """The layer names from the walked layer down to the owner."""
    return self.names[:len(self.names) - len(self.own)]


def _class_rule(layer):
  for cls in type(layer).__mro__:
    if cls in _REGISTERED:
      return _REGISTERED[cls]
    if cls in _BUILT_IN:
      return _BUILT_IN[cls]
  return None


def _rnn_cells(layer):
  """(path, cell) of an RNN layer's cells (stacked cells flattened)."""
  cell = layer.cell
  if isinstance(cell, flavours.classes('layers.StackedRNNCells')):
    return [(f'cell/cells/{i}', c) for i, c in enumerate(cell.cells)]
  return [('cell', cell)]


def own_weights(layer, options=Options()):
  """[(attribute path, weight)] a layer masks itself; None for containers.

  Args:
    layer: a tf_keras layer.
    options: `Options`.

  Returns:
    A list (possibly empty: a known layer with nothing to mask, or not yet
    built), or None when the layer's class has no rule (walk its
    sublayers).
  """
  names = _class_rule(layer)
  if names is not None:
    if not options.depthwise:
      names = tuple(n for n in names if n != DEPTHWISE)
    return [((n,), getattr(layer, n)) for n in names
            if getattr(layer, n, None) is not None]
  if isinstance(layer, flavours.classes('layers.RNN')):
    kinds = ('kernel', RECURRENT) if options.recurrent else ('kernel',)
    return [((*path.split('/'), k), getattr(cell, k))
            for path, cell in _rnn_cells(layer) for k in kinds
            if getattr(cell, k, None) is not None]
  if getattr(layer, 'walk_its_layer', False):
    return None  # A masking wrapper: what it masks is found below it.
  if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
    if not layer.built:
      return []
    return [((short_name(w),), w) for w in layer.get_prunable_weights()]
  return None


def short_name(variable):
  """'kernel' of 'model/dense/kernel:0'."""
  return variable.name.split('/')[-1].split(':')[0]


def find(layer, options=Options(), stop=(), _path=(), _names=()):
  """Every maskable weight in `layer`'s tree, in a stable order.

  Args:
    layer: a tf_keras layer or model.
    options: `Options`.
    stop: layer classes not to look into (e.g. already masked wrappers).
    _path, _names: the prefix of the recursion.

  Returns:
    A list of `Found`.
  """
  if isinstance(layer, tuple(stop)):
    return []
  own = own_weights(layer, options)
  if own is not None:
    return [Found(_path + path, _names + path, weight, layer, path)
            for path, weight in own]
  found = []
  for name, child in compat.named_sublayers(layer):
    found += find(child, options, stop, _path + tuple(name.split('/')),
                  _names + (child.name,))
  return found


def unmaskable_kernels(layer, stop=(), _names=()):
  """[(layer names path, layer, weight)] of kernel-like unmaskable weights.

  Kernel-like: trainable, two or more dimensions. A container owns none of
  its sublayers' weights; a layer with a rule (even an empty one, e.g. a
  depthwise kernel left dense) is not listed.
  """
  if isinstance(layer, tuple(stop)) or _rule(layer, Options())[0]:
    return []
  result = []
  children = compat.named_sublayers(layer)
  below = {id(w) for _, c in children for w in c.weights}
  for weight in layer.trainable_weights:
    if id(weight) not in below and len(weight.shape) >= 2:
      result.append((_names + (short_name(weight),), layer, weight))
  for _, child in children:
    result += unmaskable_kernels(child, stop, _names + (child.name,))
  return result


def has_several_kernels(layer):
  """Whether a layer's rule names several kernels (an RNN's input and
  recurrent ones, a separable convolution's two): they are told apart by
  name."""
  names = _class_rule(layer)
  return isinstance(layer, flavours.classes('layers.RNN')) or (
      names is not None and len(names) > 1)


def _rule(layer, options):
  """(has a rule, masks something): a class rule, an RNN, a PrunableLayer."""
  names = _class_rule(layer)
  if names is not None:
    return True, any(options.depthwise or n != DEPTHWISE for n in names)
  if isinstance(layer, flavours.classes('layers.RNN')) or (
      isinstance(layer, tfmot.sparsity.keras.PrunableLayer)
      and not getattr(layer, 'walk_its_layer', False)):
    return True, True
  return False, False


def is_maskable(layer, options=Options(), stop=()):
  """Whether `layer`'s tree has a maskable weight (or will, once built)."""
  if isinstance(layer, tuple(stop)):
    return False
  ruled, masks = _rule(layer, options)
  if ruled:
    return masks
  if isinstance(layer, flavours.classes('layers.MultiHeadAttention')):
    # Keras 3 makes the projections when the layer is built.
    return True
  return any(is_maskable(child, options, stop)
             for _, child in compat.named_sublayers(layer))


_EINSUM = re.compile(r'^\s*([a-z.]+)\s*,\s*([a-z.]+)\s*->\s*([a-z.]+)\s*$')


def contracted_axes(owner, weight):
  """Axes of `weight` summed into one output unit (its fan-in axes).

  All but the last for Dense, convolution, Embedding and RNN kernels; the
  spatial axes of a depthwise kernel [k.., channels, multiplier]; the axes
  an EinsumDense kernel shares with its input and not its output.
  """
  rank = len(weight.shape)
  if isinstance(owner, flavours.classes('layers.DepthwiseConv1D',
                                       'layers.DepthwiseConv2D')) or (
                            'depthwise' in weight.name):
    return list(range(rank - 2))
  if isinstance(owner, flavours.classes('layers.LocallyConnected1D',
                                       'layers.LocallyConnected2D')) and (
                            owner.implementation == 1):
    # [output positions, window inputs, filters]: one filter at one
    # position sums its window.
    return [rank - 2]
  if isinstance(owner, flavours.classes('layers.EinsumDense')):
    match = _EINSUM.match(owner.equation)
    if match:
      inputs, kernel, outputs = match.groups()
      return [i for i, letter in enumerate(kernel)
              if letter in inputs and letter not in outputs]
  return list(range(rank - 1))


def fan_in_out(owner, weight):
  """(fan-in, fan-out) of a maskable weight: the true ones of its op.

  Dense kernels [in, out]; convolutions [k.., in, out] (fan-in k..·in);
  EinsumDense: the kernel dimensions contracted with the input, and the
  others (fan-out: the kernel's size over its fan-in); Embedding
  [vocab, dim]: (vocab, dim); RNN kernels [in, 4·units] (LSTM),
  [in, 3·units] (GRU), [in, units]: (in, gates·units).

  Returns:
    (int, int).
  """
  shape = [int(d) for d in weight.shape]
  if len(shape) == 1:
    return shape[0], 1
  fan_in = math.prod(shape[i] for i in contracted_axes(owner, weight))
  return fan_in, math.prod(shape) // fan_in


_CONVOLUTIONS = flavours.classes(*[f'layers.{name}' for name in (
    'Conv1D', 'Conv2D', 'Conv3D', 'DepthwiseConv1D', 'DepthwiseConv2D',
    'SeparableConv1D', 'SeparableConv2D')])


def erk_shape(owner, weight) -> Sequence[int]:
  """The shape ERK weighs a kernel by: its own for convolutions (RigL's
  (k, k, in, out)), (fan-in, fan-out) for the others."""
  if isinstance(owner, _CONVOLUTIONS):
    return tuple(int(d) for d in weight.shape)
  return fan_in_out(owner, weight)
