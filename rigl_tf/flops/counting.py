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
"""MicroNet-style FLOP and size counting of one inference, per layer.

Conv2D, DepthwiseConv2D and Dense layers are counted as in RigL's
`sparse_utils.get_stats` (built on the MicroNet challenge's `counting.py`);
the other layers the wrapper can mask are counted by the same rules:
Conv1D and Conv3D as convolutions over 1 or 3 spatial dimensions, and a
SeparableConv (1D/2D) as its two ops, a depthwise convolution (named
`<layer>/depthwise_kernel`, dot products only: Keras applies no bias or
activation between the two) followed by a 1x1 convolution
(`<layer>/pointwise_kernel`). Every other layer is listed as not counted. A
layer applied several times (shared weights) is counted once per call. For
a counted layer with n kernel weights of which nnz = n * d are non-zero
(density d), applied at P output positions (out_h * out_w for a
convolution, 1 for a dense layer on a vector) and producing P * c_out
output elements:

* each output element is a dot product of the non-zero weights that reach
  it: nnz * P multiplies and nnz * P - P * c_out adds in all;
* plus, always, one bias add and one ReLU (counted as a multiply) per output
  element, whether or not the layer has a bias or a ReLU: this is what the
  MicroNet ops RigL builds (`use_bias=True, activation='relu'`) count;
* FLOPs = multiplies + adds;
* size in bits: 32 * nnz, plus a 1-bit mask per weight when d < 1, plus 32
  per output channel for the bias.

Output spatial size: RigL counts every convolution as 'same'-padded on the
input the layer actually receives: out = ceil((in - k + 1 + 2 * (k // 2)) /
stride), even for the 'valid' convolution that follows an explicit
`ZeroPadding2D`. So ResNet-50's `conv1` (7x7/2 on the 230x230 padded input)
is counted at 115x115, not at the 112x112 Keras computes. That convention
(`padding_rule='micronet'`, the default) is needed to reproduce the paper's
numbers: with it the dense Keras ResNet-50 costs 8,202,340,776 FLOPs and
816,975,104 bits = 102.121888 MB, RigL's 8.2e9 / 102.122 MB; counting
`conv1` at its true 112x112 output gives 8.1895e9 (0.16% lower).
`padding_rule='layer'` uses each layer's own padding ('valid' is pad 0) and
gives the output sizes Keras computes. A megabyte is 1e6 bytes (the 2**20
convention would give 97.39 "MB" for the same model).

Depthwise layers follow MicroNet's `DepthWiseConv2D` op (bias and ReLU per
output channel). RigL's MobileNet numbers (1141.544 MFLOPs, 16.864 MB dense)
were made with a Keras in which `DepthwiseConv2D` subclassed `Conv2D`, so
`get_stats` counted it as a convolution with a single output channel (one
bias and one ReLU per position); `depthwise_as_conv=True` reproduces that.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import math
from typing import Any

import numpy as np
import tf_keras as keras

from rigl_tf import compat
from rigl_tf import distributions
from rigl_tf import flavours
from rigl_tf import layers as masked_layers
from rigl_tf import maskable
from rigl_tf.flops import rules
from rigl_tf.flops import trace

PARAM_BITS = 32
BYTES_PER_MB = 1e6
PADDING_RULES = ('micronet', 'layer')


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """The MicroNet cost of one layer for one inference example.

  Attributes:
    name: the layer's name (the wrapped layer's name for a masked layer).
    kind: 'Conv2D', 'DepthwiseConv2D', 'Dense', or the class name of a layer
      that is not counted.
    input_shape: the layer's input shape without the batch dimension.
    output_shape: the output shape the count uses (spatial size by the
      padding rule; see the module docstring), without the batch dimension.
    kernel_shape: shape of the counted kernel; () when not counted.
    n_weights: number of kernel weights (for an uncounted layer: its number
      of parameters, for information).
    n_nonzero: number of non-zero kernel weights, n_weights * density.
    positions: output positions at which the kernel is applied (P).
    out_channels: output channels that get a bias add and a ReLU per
      position.
    counted: whether MicroNet counts the layer.
    param_bits: bits per stored non-zero weight or bias.
    bias_relu: whether a bias add and a ReLU follow each output element
      (False for the depthwise half of a separable convolution).
    maskable: for an uncounted layer, whether `rigl_tf.layers` can mask it
      (a registered custom layer, ...): sparse weights whose cost is not
      counted.
    extra_mults, extra_adds: products that involve no weight (attention's
      activation x activation products, an LSTM cell's gating), never
      sparse.
    erk_shape: the kernel's shape as ERK weighs it (its true fan-in and
      fan-out, `rigl_tf.maskable.erk_shape`).
    mask_name: the `MaskedWeight.name` of the kernel's mask, '' if none.
  """
  name: str
  kind: str
  input_shape: tuple
  output_shape: tuple
  kernel_shape: tuple = ()
  n_weights: int = 0
  n_nonzero: float = 0.0
  positions: int = 0
  out_channels: int = 0
  counted: bool = False
  param_bits: int = PARAM_BITS
  bias_relu: bool = True
  maskable: bool = False
  extra_mults: float = 0.0
  extra_adds: float = 0.0
  erk_shape: tuple = ()
  mask_name: str = ''

  @property
  def density(self) -> float:
    """Fraction of non-zero kernel weights (1.0 when there are none)."""
    return self.n_nonzero / self.n_weights if self.n_weights else 1.0

  @property
  def n_outputs(self) -> int:
    return self.positions * self.out_channels

  @property
  def _bias_relu_ops(self) -> int:
    return self.n_outputs if self.bias_relu else 0

  @property
  def mults(self) -> float:
    """Dot-product multiplies plus one ReLU multiply per output element."""
    return (self.n_nonzero * self.positions + self._bias_relu_ops
            + self.extra_mults)

  @property
  def adds(self) -> float:
    """Dot-product adds (n - 1 per dot product) plus one bias add each."""
    dot_adds = self.n_nonzero * self.positions - self.n_outputs
    return dot_adds + self._bias_relu_ops + self.extra_adds

  @property
  def flops(self) -> float:
    return self.mults + self.adds

  @property
  def bits(self) -> float:
    """Bits to store the kernel's non-zeros, its bitmask and a bias."""
    if not self.counted:
      return 0.0
    mask_bits = self.n_weights if self.n_nonzero < self.n_weights else 0
    bias_bits = self.param_bits * self.out_channels if self.bias_relu else 0
    return self.param_bits * self.n_nonzero + mask_bits + bias_bits

  def as_dict(self) -> dict[str, Any]:
    """JSON-friendly record, derived quantities included."""
    return {
        'name': self.name,
        'kind': self.kind,
        'input_shape': list(self.input_shape),
        'output_shape': list(self.output_shape),
        'kernel_shape': list(self.kernel_shape),
        'n_weights': self.n_weights,
        'density': self.density,
        'mults': self.mults,
        'adds': self.adds,
        'flops': self.flops,
        'bits': self.bits,
        'counted': self.counted,
    }


@dataclasses.dataclass(frozen=True)
class CostSummary:
  """Totals over the counted layers of a model."""
  flops: float
  mults: float
  adds: float
  bits: float
  n_weights: int
  n_nonzero: float

  @property
  def bytes(self) -> float:
    return self.bits / 8.0

  @property
  def size_mb(self) -> float:
    return self.bytes / BYTES_PER_MB

  @property
  def density(self) -> float:
    return self.n_nonzero / self.n_weights if self.n_weights else 1.0

  @property
  def sparsity(self) -> float:
    return 1.0 - self.density


# ----------------------------------------------------------------------------
# Walking the model: every call of every layer, at any depth.
# ----------------------------------------------------------------------------


def _is_masked(layer) -> bool:
  """Whether `layer` follows the masked-layer contract of `MaskedLayer`.

  A wrapper (`layer`) owning 0/1 `masks` aligned with its
  `prunable_weights`: any such wrapper is counted at its masks' density.
  """
  return (hasattr(layer, 'masks') and hasattr(layer, 'layer')
          and hasattr(layer, 'prunable_weights'))


def _masks_by_weight(model):
  """`_vid(weight)` -> (mask, name) of every masked weight in `model`."""
  found = {}
  for wrapper in [model, *masked_layers.walk_layers(model)]:
    if _is_masked(wrapper) and not isinstance(
        wrapper, masked_layers.MASKED_LAYER_CLASSES):
      # Another wrapper with the same contract (Gem-Miner's scored layers).
      for weight, mask in zip(wrapper.prunable_weights, wrapper.masks):
        found[_vid(weight)] = (mask, wrapper.name)
  for mw in masked_layers.get_masked_weights(model):
    found[_vid(mw.weight)] = (mw.mask, mw.name)
  return found


def _vid(variable):
  """One key for a variable and (Keras 3) the TensorFlow one behind it."""
  return id(compat.tf_variable(variable))


def _shape_without_batch(shape) -> tuple:
  return tuple(shape[1:]) if shape is not None else ()


def _layer_shape(layer, attr):
  try:
    shape = getattr(layer, attr)
  except (AttributeError, RuntimeError):
    return None
  # A layer with several inputs/outputs reports a list of shapes.
  if isinstance(shape, list):
    return None
  return tuple(shape)


def _graph_calls(model):
  """`trace.Call`s of a Functional/Sequential model from its graph nodes.

  A layer used twice (shared weights) has two; nested models are expanded.
  None when a layer needs a trace (a layer with sublayers, whose inner calls
  the graph does not know).
  """
  calls = []
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      continue
    inner = layer.layer if _is_masked(layer) else layer
    if isinstance(layer, keras.Model) and not _is_masked(layer):
      nested = _graph_calls(layer)
      if nested is None:
        return None
      calls += nested * max(1, len(compat.layer_call_shapes(model, layer)))
      continue
    if rules.ops_function(inner) is None and compat.named_sublayers(inner):
      return None
    shapes = compat.layer_call_shapes(model, layer) or [
        (_layer_shape(layer, 'input_shape'),
         _layer_shape(layer, 'output_shape'))]
    calls += [trace.Call(inner, i, o) for i, o in shapes]
  return calls


def _calls(model):
  """The top-level calls, from the graph when it has them all, else traced.

  Traced shapes have batch 1; they become None like the graph's.
  """
  if not flavours.is_keras3(model) and (
      isinstance(model, keras.Sequential) or compat.is_graph_network(model)):
    # Keras 3 models are traced (their graph nodes are another API).
    calls = _graph_calls(model)
    if calls is not None:
      return calls, False
  return trace.trace_calls(model), True


def _batched(shape, traced):
  """A shape with its batch dimension as None.

  In a traced call the batch is 1, except inside `TimeDistributed`, whose
  inner layer sees batch x time merged: that leading size is kept as a
  dimension of its own.
  """
  if shape is None:
    return None
  if traced and shape and shape[0] != 1:
    return (None, *shape)
  return (None, *shape[1:])


@dataclasses.dataclass(frozen=True)
class _Context:
  densities: dict
  masks: dict
  padding_rule: str
  depthwise_as_conv: bool
  param_bits: int


def _op_cost(ctx, name, op, input_shape):
  """The `LayerCost` of one op (its density: planned, mask or dense)."""
  if op.kernel is None:
    return LayerCost(
        name=name, kind=op.kind, input_shape=(),
        output_shape=op.output_shape, counted=True,
        param_bits=ctx.param_bits, bias_relu=False,
        extra_mults=float(op.extra_mults), extra_adds=float(op.extra_adds))
  n_weights = int(np.prod(op.kernel.shape))
  mask, mask_name = ctx.masks.get(_vid(op.kernel), (None, ''))
  if name in ctx.densities:
    n_nonzero = n_weights * _check_density(name, ctx.densities[name])
  elif mask is not None:
    # get_value also reads mirrored (tf.distribute) variables.
    n_nonzero = float(np.sum(keras.backend.get_value(
        compat.tf_variable(mask))))
  else:
    n_nonzero = float(n_weights)
  return LayerCost(
      name=name, kind=op.kind,
      input_shape=_shape_without_batch(input_shape),
      output_shape=op.output_shape,
      kernel_shape=tuple(int(d) for d in op.kernel.shape),
      n_weights=n_weights, n_nonzero=float(n_nonzero),
      positions=op.positions, out_channels=op.out_channels, counted=True,
      param_bits=ctx.param_bits, bias_relu=op.bias_relu,
      extra_mults=float(op.extra_mults), extra_adds=float(op.extra_adds),
      erk_shape=tuple(maskable.erk_shape(op.owner, op.kernel)),
      mask_name=mask_name)


def _uncounted(ctx, name, layer, input_shape, output_shape, n_weights):
  return LayerCost(
      name=name, kind=type(layer).__name__,
      input_shape=_shape_without_batch(input_shape),
      output_shape=_shape_without_batch(output_shape),
      n_weights=n_weights, param_bits=ctx.param_bits,
      maskable=any(_vid(w) in ctx.masks for w in layer.weights)
      or bool(layer.weights) and masked_layers.is_maskable(layer))


def _call_costs(ctx, call, prefix, traced):
  """The costs of one call and of the calls inside it, in order."""
  layer = call.layer
  if _is_masked(layer) or (isinstance(layer, flavours.classes('Model'))
                           and not prefix):
    # A wrapper or a nested model adds no name: its layers keep theirs.
    return [c for child in call.children
            for c in _call_costs(ctx, child, prefix, traced)]
  name = '/'.join([*prefix, layer.name])
  input_shape = _batched(call.input_shape, traced)
  output_shape = _batched(call.output_shape, traced)
  ops_fn = rules.ops_function(layer)
  ops = ops_fn and ops_fn(layer, input_shape, output_shape, ctx.padding_rule,
                          ctx.depthwise_as_conv)
  if ops:
    if input_shape is None:
      raise ValueError(
          f'Cannot count layer {name!r}: its input shape is unknown. Count '
          'a model built (or called) on a static input.')
    return [_op_cost(ctx, name + op.suffix, op, input_shape) for op in ops]
  costs = []
  below = {id(w) for child in call.children for w in child.layer.weights}
  own = sum(int(np.prod(w.shape)) for w in layer.weights
            if id(w) not in below)
  if own or not call.children:
    costs.append(_uncounted(ctx, name, layer, input_shape, output_shape, own))
  attention = compat.attention_parts(layer)
  products_counted = False
  for child in call.children:
    # The score and context products come with the softmax, or before the
    # output projection where no softmax layer is called (Keras 3 computes
    # attention in one op when it can).
    if attention and not products_counted and any(
        child.layer is attention[part] for part in ('softmax', 'output')):
      costs += _attention_costs(ctx, name, call, attention)
      products_counted = True
    costs += _call_costs(ctx, child, [*prefix, layer.name], traced)
  return costs


def _attention_costs(ctx, name, call, parts):
  """Score and context products of a MultiHeadAttention call."""
  shapes = {c.layer: c.output_shape for c in call.children}
  query, key, value = (shapes[parts[k]][1:]
                       for k in ('query', 'key', 'value'))
  return [_op_cost(ctx, name + op.suffix, op, ())
          for op in rules.attention_ops(query, key, value)]


def layer_costs(model: keras.Model,
                densities: Mapping[str, float] | None = None,
                *,
                padding_rule: str = 'micronet',
                depthwise_as_conv: bool = False,
                param_bits: int = PARAM_BITS) -> list[LayerCost]:
  """Per-layer MicroNet costs of a built model, in call order.

  A record's density comes from `densities[name]` when given (planned
  densities, e.g. from `rigl_tf.distributions` before any training), else
  from the kernel's mask when it has one, else 1 (dense). Every layer call
  is walked, at any depth: a Functional or Sequential model's own graph
  gives the shapes of its layers; a subclassed model, or a layer with
  sublayers (attention, a custom block, `TimeDistributed`,
  `Bidirectional`), is traced once (`rigl_tf.flops.trace`). Records of
  layers inside another layer are named by the path of layer names
  ('block/dense_1', 'mha/query'); nested models and masked wrappers add no
  name. A layer applied several times gives one record per call (the same
  name; its weights are stored once, see `summarize`). A separable
  convolution gives two records, `<name>/depthwise_kernel` and
  `<name>/pointwise_kernel`, an RNN `<name>/kernel` and
  `<name>/recurrent_kernel`, an attention block also `<name>/scores` and
  `<name>/context` (no weights).

  Args:
    model: a built tf_keras model with a static input shape (a subclassed
      one called once).
    densities: optional record name -> density in [0, 1].
    padding_rule: 'micronet' (RigL's: every convolution counted as 'same' on
      its actual input) or 'layer' (each layer's own padding).
    depthwise_as_conv: count a depthwise kernel (k, k, C, m) as a convolution
      with m output channels, as RigL's MobileNet numbers do.
    param_bits: bits per stored weight or bias.

  Returns:
    A list of `LayerCost`, one per counted op and call (uncounted layers
    with `counted=False`).

  Raises:
    ValueError: for an unknown padding rule, a name in `densities` that is
      not a counted layer, a density outside [0, 1], or a layer whose input
      shape is unknown.
  """
  if padding_rule not in PADDING_RULES:
    raise ValueError(f'Unknown padding_rule {padding_rule!r}; choose one of '
                     f'{PADDING_RULES}.')
  ctx = _Context(dict(densities or {}), _masks_by_weight(model),
                 padding_rule, depthwise_as_conv, param_bits)
  calls, traced = _calls(model)
  costs = [c for call in calls for c in _call_costs(ctx, call, [], traced)]
  _check_names(ctx.densities, costs)
  return costs


def _check_density(name, density):
  if not 0.0 <= density <= 1.0:
    raise ValueError(f'Density of {name!r} must be in [0, 1], got {density}.')
  return float(density)


def _check_names(densities, costs):
  counted = [c.name for c in costs if c.counted]
  unknown = sorted(set(densities) - set(counted))
  if unknown:
    raise ValueError(f'densities name layers that are not counted: {unknown}; '
                     f'counted layers are {counted}.')


def with_densities(costs: Sequence[LayerCost],
                   densities: Mapping[str, float]) -> list[LayerCost]:
  """Recounts `costs` with new densities for the named layers.

  Cheap (no model needed), e.g. to evaluate every density of a pruning
  schedule.

  Args:
    costs: records from `layer_costs`.
    densities: layer name -> density; layers not named keep theirs.

  Returns:
    New records.

  Raises:
    ValueError: for an unknown layer name or a density outside [0, 1].
  """
  _check_names(densities, costs)
  return [
      dataclasses.replace(
          c, n_nonzero=c.n_weights * _check_density(c.name, densities[c.name]))
      if c.name in densities else c for c in costs
  ]


def dense_costs(costs: Sequence[LayerCost]) -> list[LayerCost]:
  """The same layers at density 1."""
  return with_densities(costs, {c.name: 1.0 for c in costs if c.counted})


def summarize(costs: Sequence[LayerCost]) -> CostSummary:
  """Totals of the counted layers: FLOPs, size and overall density.

  FLOPs add up over every call; weights (size, density) count once per
  layer, however often it is called.
  """
  counted = [c for c in costs if c.counted]
  stored = list({c.name: c for c in reversed(counted)}.values())
  return CostSummary(
      flops=sum(c.flops for c in counted),
      mults=sum(c.mults for c in counted),
      adds=sum(c.adds for c in counted),
      bits=sum(c.bits for c in stored),
      n_weights=sum(c.n_weights for c in stored),
      n_nonzero=sum(c.n_nonzero for c in stored))


def kernel_shapes(costs: Sequence[LayerCost]) -> dict[str, tuple]:
  """Ordered record name -> kernel shape of the counted kernels.

  Records without weights (attention's activation products) are left out.
  """
  return {c.name: c.kernel_shape for c in costs if c.counted and c.n_weights}


def planned_densities(costs: Sequence[LayerCost],
                      sparsity: float,
                      distribution: str = 'erk',
                      dense_layers: Sequence[str] = (),
                      custom_sparsity_map: Mapping[str, float] | None = None,
                      first_layer_dense: bool = False,
                      erk_power_scale: float = 1.0,
                      mask_depthwise: bool = False) -> dict[str, float]:
  """Counted layer name -> density that training would draw.

  The distribution gives each layer its sparsity s (`rigl_tf.distributions`)
  and `rigl_tf.masks` keeps n - floor(s * n) of a layer's n weights, so the
  planned counts equal those of a trained model. Depthwise kernels stay
  dense and outside the budget unless `mask_depthwise` (as `sparsify`).

  Args:
    costs: records from `layer_costs`.
    sparsity: overall sparsity in [0, 1).
    distribution: 'erk', 'er' or 'uniform'.
    dense_layers: layers kept dense (outside the budget).
    custom_sparsity_map: layer name -> sparsity, outside the budget.
    first_layer_dense: keep the first counted layer dense.
    erk_power_scale: ERK's exponent.
    mask_depthwise: plan sparse depthwise kernels too.

  Returns:
    dict name -> density (layers kept dense may be absent).
  """
  shapes = kernel_shapes(costs)
  sparsities = distributions.get_sparsities(
      _maskable_shapes(costs, mask_depthwise), sparsity,
      method=distribution, erk_power_scale=erk_power_scale,
      dense_layers=tuple(dense_layers),
      custom_sparsity_map=custom_sparsity_map,
      first_layer_dense=first_layer_dense)
  return {
      name: distributions.num_ones(s, math.prod(shapes[name]))
      / math.prod(shapes[name]) for name, s in sparsities.items()
  }


def _maskable_shapes(costs, mask_depthwise):
  """The shapes ERK weighs, of the kernels `sparsify` would mask: true
  fan-in and fan-out (`LayerCost.erk_shape`)."""
  shapes = {c.name: c.erk_shape or c.kernel_shape for c in costs
            if c.counted and c.n_weights}
  if mask_depthwise:
    return shapes
  # Depthwise kernels stay dense and outside the budget (rigl_tf.layers).
  depthwise = {c.name for c in costs if c.kind.startswith('DepthwiseConv')}
  return {n: s for n, s in shapes.items() if n not in depthwise}
