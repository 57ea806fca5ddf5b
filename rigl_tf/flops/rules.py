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
"""The counted ops of each layer kind (MicroNet rules; see `counting`).

`ops_function(layer)` gives, for a layer MicroNet counts, a function
(layer, input shape, output shape, padding rule, depthwise_as_conv) -> [Op]:
the kernels it applies and where. Shapes carry a leading batch dimension
(None). Beyond RigL's Conv/Dense/Depthwise:

* EinsumDense: its kernel applied at every output position, a position
  being an output element over the kernel's output dimensions (e.g. the
  sequence position for attention's 'abc,cde->abde' projections);
* LSTM / GRU / SimpleRNN: per time step, the input kernel (with its bias
  and one activation per gate output) and the recurrent kernel (whose
  products are added to the input part: one add per gate output), plus the
  cell's element-wise products (LSTM: 4 multiplies and 1 add per unit per
  step, tanh(c) counted as a multiply as ReLU is; GRU: 3 multiplies and 2
  adds, 3 more adds for its separate recurrent bias);
* Embedding: a lookup, no multiply-add; its weights are stored (size).

`attention_ops` gives a `MultiHeadAttention` block's score (QK^T) and
context (softmax(.)V) products: activation x activation, never sparse.
"""

import dataclasses
import math
from typing import Any

import numpy as np

from rigl_tf import flavours
from rigl_tf import maskable


def _spatial_output(size, kernel, stride, dilation, padding, padding_rule):
  """Output length along one spatial dimension."""
  effective = (kernel - 1) * dilation + 1
  if padding_rule == 'micronet':
    # MicroNet's 'same': k // 2 on each side, whatever the layer's padding.
    return math.ceil((size - effective + 1 + 2 * (effective // 2)) / stride)
  if padding == 'same':
    return math.ceil(size / stride)  # Keras 'same', any kernel size.
  return math.ceil((size - effective + 1) / stride)  # 'valid'


def _conv_output_spatial(layer, input_shape, padding_rule):
  """Output size along each spatial dimension of a (1D/2D/3D) convolution."""
  if layer.data_format != 'channels_last':
    raise ValueError(f'Layer {layer.name!r}: only channels_last is counted.')
  spatial = tuple(input_shape[1:1 + layer.rank])
  if any(d is None for d in spatial):
    raise ValueError(
        f'Layer {layer.name!r} has an unknown spatial input size '
        f'{tuple(input_shape)}: build the model with a static input shape.')
  return tuple(
      _spatial_output(size, k, s, d, layer.padding, padding_rule)
      for size, k, s, d in zip(spatial, layer.kernel_size, layer.strides,
                               layer.dilation_rate, strict=True))


@dataclasses.dataclass(frozen=True)
class Op:
  """One counted op of a layer: its kernel and where it is applied.

  `kernel` is None for an activation x activation product, whose cost is
  all in `extra_mults` / `extra_adds`.
  """
  suffix: str  # '' or '/<kernel name>' for a layer with several ops.
  kind: str
  kernel: Any
  positions: int
  out_channels: int
  output_shape: tuple
  bias_relu: bool = True
  extra_mults: float = 0.0
  extra_adds: float = 0.0
  owner: Any = None  # The layer owning `kernel` (fan-in/out for ERK).


def _conv_ops(layer, input_shape, output_shape, padding_rule,
              depthwise_as_conv):
  del output_shape, depthwise_as_conv  # Only depthwise layers care.
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  c_out = int(layer.kernel.shape[-1])
  return [Op('', f'Conv{layer.rank}D', layer.kernel, math.prod(out), c_out,
             (*out, c_out), owner=layer)]


def _depthwise_op(layer, kernel, out, depthwise_as_conv, suffix='',
                  bias_relu=True):
  """A depthwise kernel (k.., C, m) applied at the positions `out`."""
  channels = int(kernel.shape[-2]) * int(kernel.shape[-1])
  # RigL's MobileNet counts: the kernel (k, k, C, m) seen as a convolution
  # with m output channels: one bias and one ReLU per position per m.
  biased = int(kernel.shape[-1]) if depthwise_as_conv else channels
  return Op(suffix, f'DepthwiseConv{len(out)}D', kernel, math.prod(out),
            biased if bias_relu else channels, (*out, channels), bias_relu,
            owner=layer)


def _depthwise_ops(layer, input_shape, output_shape, padding_rule,
                   depthwise_as_conv):
  del output_shape
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  return [_depthwise_op(layer, layer.depthwise_kernel, out,
                        depthwise_as_conv)]


def _separable_ops(layer, input_shape, output_shape, padding_rule,
                   depthwise_as_conv):
  """Depthwise (no bias/ReLU between the two) then pointwise 1x1 conv."""
  del output_shape
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  depthwise = _depthwise_op(layer, layer.depthwise_kernel, out,
                            depthwise_as_conv, '/depthwise_kernel',
                            bias_relu=False)
  c_out = int(layer.pointwise_kernel.shape[-1])
  pointwise = Op('/pointwise_kernel', f'Conv{layer.rank}D',
                 layer.pointwise_kernel, math.prod(out), c_out,
                 (*out, c_out), owner=layer)
  return [depthwise, pointwise]


def _leading(layer, input_shape):
  leading = tuple(input_shape[1:-1])
  if any(d is None for d in leading):
    raise ValueError(f'Layer {layer.name!r} has an unknown input size '
                     f'{tuple(input_shape)}.')
  return leading


def _dense_ops(layer, input_shape, output_shape, padding_rule,
               depthwise_as_conv):
  del output_shape, padding_rule, depthwise_as_conv
  leading = _leading(layer, input_shape)
  positions = int(np.prod(leading)) if leading else 1
  units = int(layer.kernel.shape[-1])
  return [Op('', 'Dense', layer.kernel, positions, units, (*leading, units),
             owner=layer)]


def _einsum_ops(layer, input_shape, output_shape, padding_rule,
                depthwise_as_conv):
  """Output elements = positions x the kernel's output dimensions."""
  del input_shape, padding_rule, depthwise_as_conv
  out = tuple(output_shape[1:]) if output_shape is not None else (None,)
  if any(d is None for d in out):
    raise ValueError(f'Layer {layer.name!r} has an unknown output size '
                     f'{output_shape}.')
  contracted = maskable.contracted_axes(layer, layer.kernel)
  c_out = math.prod(int(d) for i, d in enumerate(layer.kernel.shape)
                    if i not in contracted)
  return [Op('', 'EinsumDense', layer.kernel, math.prod(out) // c_out, c_out,
             out, owner=layer)]


# Cell class -> (gates, element-wise multiplies, adds) per unit per step.
_CELLS = (
    (flavours.classes('layers.LSTMCell'), 4, 4, 1),
    (flavours.classes('layers.GRUCell'), 3, 3, 2),
    (flavours.classes('layers.SimpleRNNCell'), 1, 0, 0),
)


def _rnn_ops(layer, input_shape, output_shape, padding_rule,
             depthwise_as_conv):
  del output_shape, padding_rule, depthwise_as_conv
  cell = layer.cell
  rule = next((r for r in _CELLS if isinstance(cell, r[0])), None)
  if rule is None or getattr(layer, 'time_major', False):
    return None
  _, gates, mults, adds = rule
  steps = input_shape[1]
  if steps is None:
    raise ValueError(f'Layer {layer.name!r} has an unknown number of time '
                     f'steps {tuple(input_shape)}.')
  units = int(cell.units)
  if isinstance(cell, flavours.classes('layers.GRUCell')) and (
      cell.reset_after and cell.use_bias):
    adds += 3  # The recurrent bias, added apart.
  width = gates * units
  kind = type(layer).__name__
  return [
      Op('/kernel', kind, cell.kernel, steps, width, (steps, width),
         owner=layer),
      # Its products are added to the input part: one add per gate output.
      Op('/recurrent_kernel', kind, cell.recurrent_kernel, steps, width,
         (steps, width), bias_relu=False,
         extra_mults=steps * units * mults,
         extra_adds=steps * (width + units * adds), owner=layer),
  ]


def _embedding_ops(layer, input_shape, output_shape, padding_rule,
                   depthwise_as_conv):
  del input_shape, padding_rule, depthwise_as_conv
  return [Op('', 'Embedding', layer.embeddings, 0, 0,
             tuple(output_shape[1:]), bias_relu=False, owner=layer)]


# Layer class -> function giving its counted ops. Looked up in this order
# with isinstance; `_NOT_COUNTED` catches subclasses that are different ops.
_COUNTED_BY_NAME = (
    ('DepthwiseConv1D', _depthwise_ops),
    ('DepthwiseConv2D', _depthwise_ops),
    ('SeparableConv1D', _separable_ops),
    ('SeparableConv2D', _separable_ops),
    ('Conv1D', _conv_ops),
    ('Conv2D', _conv_ops),
    ('Conv3D', _conv_ops),
    ('Dense', _dense_ops),
    ('EinsumDense', _einsum_ops),
    ('Embedding', _embedding_ops),
    ('LSTM', _rnn_ops),
    ('GRU', _rnn_ops),
    ('SimpleRNN', _rnn_ops),
)
_COUNTED_LAYERS = tuple((flavours.classes(f'layers.{name}'), ops_fn)
                        for name, ops_fn in _COUNTED_BY_NAME)
_NOT_COUNTED = flavours.classes(
    'layers.Conv1DTranspose', 'layers.Conv2DTranspose',
    'layers.Conv3DTranspose')


def ops_function(layer):
  """The op function of a counted layer, or None."""
  if isinstance(layer, _NOT_COUNTED):
    return None
  for cls, ops_fn in _COUNTED_LAYERS:
    if isinstance(layer, cls):
      return ops_fn
  return None


def attention_ops(query_shape, key_shape, value_shape):
  """The score and context products of one attention call.

  Args:
    query_shape, key_shape, value_shape: the projections' outputs without
      the batch dimension: (positions.., heads, key_dim) for query and key,
      (positions.., heads, value_dim) for value.

  Returns:
    [scores Op, context Op]: for H heads, Tq queries, Tk keys, key size dk
    and value size dv, the scores take H*Tq*Tk*dk multiplies and
    H*Tq*Tk*(dk - 1) adds, the context H*Tq*dv*Tk and H*Tq*dv*(Tk - 1).
  """
  heads, dk = int(query_shape[-2]), int(query_shape[-1])
  dv = int(value_shape[-1])
  tq = math.prod(int(d) for d in query_shape[:-2])
  tk = math.prod(int(d) for d in key_shape[:-2])
  scores = heads * tq * tk
  context = heads * tq * dv
  return [
      Op('/scores', 'AttentionScores', None, 0, 0, (heads, tq, tk),
         bias_relu=False, extra_mults=scores * dk,
         extra_adds=scores * (dk - 1)),
      Op('/context', 'AttentionContext', None, 0, 0, (tq, heads, dv),
         bias_relu=False, extra_mults=context * tk,
         extra_adds=context * (tk - 1)),
  ]
