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
from rigl_tf import layers as masked_layers

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
      (LSTM, Embedding, ...): sparse weights whose cost is not counted.
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
    return self.n_nonzero * self.positions + self._bias_relu_ops

  @property
  def adds(self) -> float:
    """Dot-product adds (n - 1 per dot product) plus one bias add each."""
    dot_adds = self.n_nonzero * self.positions - self.n_outputs
    return dot_adds + self._bias_relu_ops

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
# Layer geometry: how many positions, which output channels, which kernel.
# ----------------------------------------------------------------------------


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
class _Op:
  """One counted op of a layer: its kernel and where it is applied."""
  suffix: str  # '' or '/<kernel name>' for a layer with several ops.
  kind: str
  kernel: Any
  positions: int
  out_channels: int
  output_shape: tuple
  bias_relu: bool = True


def _conv_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  del depthwise_as_conv  # Only depthwise layers care.
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  c_out = int(layer.kernel.shape[-1])
  return [_Op('', f'Conv{layer.rank}D', layer.kernel, math.prod(out), c_out,
              (*out, c_out))]


def _depthwise_op(kernel, out, depthwise_as_conv, suffix='', bias_relu=True):
  """A depthwise kernel (k.., C, m) applied at the positions `out`."""
  channels = int(kernel.shape[-2]) * int(kernel.shape[-1])
  # RigL's MobileNet counts: the kernel (k, k, C, m) seen as a convolution
  # with m output channels: one bias and one ReLU per position per m.
  biased = int(kernel.shape[-1]) if depthwise_as_conv else channels
  return _Op(suffix, f'DepthwiseConv{len(out)}D', kernel, math.prod(out),
             biased if bias_relu else channels, (*out, channels), bias_relu)


def _depthwise_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  return [_depthwise_op(layer.depthwise_kernel, out, depthwise_as_conv)]


def _separable_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  """Depthwise (no bias/ReLU between the two) then pointwise 1x1 conv."""
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  depthwise = _depthwise_op(layer.depthwise_kernel, out, depthwise_as_conv,
                            '/depthwise_kernel', bias_relu=False)
  c_out = int(layer.pointwise_kernel.shape[-1])
  pointwise = _Op('/pointwise_kernel', f'Conv{layer.rank}D',
                  layer.pointwise_kernel, math.prod(out), c_out, (*out, c_out))
  return [depthwise, pointwise]


def _dense_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  del padding_rule, depthwise_as_conv
  leading = input_shape[1:-1]
  if any(d is None for d in leading):
    raise ValueError(f'Layer {layer.name!r} has an unknown input size '
                     f'{tuple(input_shape)}.')
  positions = int(np.prod(leading)) if leading else 1
  units = int(layer.kernel.shape[-1])
  return [_Op('', 'Dense', layer.kernel, positions, units, (*leading, units))]


# Layer class -> function giving its counted ops. Looked up in this order
# with isinstance; `_NOT_COUNTED` catches subclasses that are different ops.
_COUNTED_LAYERS = (
    (keras.layers.DepthwiseConv1D, _depthwise_ops),
    (keras.layers.DepthwiseConv2D, _depthwise_ops),
    (keras.layers.SeparableConv1D, _separable_ops),
    (keras.layers.SeparableConv2D, _separable_ops),
    (keras.layers.Conv1D, _conv_ops),
    (keras.layers.Conv2D, _conv_ops),
    (keras.layers.Conv3D, _conv_ops),
    (keras.layers.Dense, _dense_ops),
)
_NOT_COUNTED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                keras.layers.Conv3DTranspose)


def _ops_function(layer):
  if isinstance(layer, _NOT_COUNTED):
    return None
  for cls, ops_fn in _COUNTED_LAYERS:
    if isinstance(layer, cls):
      return ops_fn
  return None


def _is_masked(layer) -> bool:
  """Whether `layer` follows the masked-layer contract of `MaskedLayer`.

  A wrapper (`layer`) owning 0/1 `masks` aligned with its
  `prunable_weights`: any such wrapper is counted at its masks' density.
  """
  return (hasattr(layer, 'masks') and hasattr(layer, 'layer')
          and hasattr(layer, 'prunable_weights'))


def _mask_nonzeros(wrapper, kernel) -> float | None:
  """Number of ones in the mask of `kernel` (None when it has no mask)."""
  weights = list(wrapper.prunable_weights)
  index = next((i for i, w in enumerate(weights) if w is kernel), None)
  if index is None:  # Not masked (e.g. a depthwise kernel kept dense).
    return None
  # get_value also reads mirrored (tf.distribute) variables.
  return float(np.sum(keras.backend.get_value(list(wrapper.masks)[index])))


def _is_maskable(layer) -> bool:
  """Whether `rigl_tf.layers` can mask `layer`."""
  return bool(layer.weights) and masked_layers.is_maskable(layer)


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


def _calls(model, layer):
  """(input shape, output shape) of each call of `layer` inside `model`.

  A Functional/Sequential model knows its calls (graph nodes); a layer used
  twice (shared weights) has two. Otherwise: one call, the layer's shapes.
  """
  calls = compat.layer_call_shapes(model, layer)
  if calls:
    return calls
  return [(_layer_shape(layer, 'input_shape'),
           _layer_shape(layer, 'output_shape'))]


def _walk(model):
  """Yields (layer, input shape, output shape) once per call of each layer."""
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      continue
    calls = _calls(model, layer)
    if isinstance(layer, keras.Model) and not _is_masked(layer):
      for _ in calls:
        yield from _walk(layer)
    else:
      for input_shape, output_shape in calls:
        yield layer, input_shape, output_shape


def layer_costs(model: keras.Model,
                densities: Mapping[str, float] | None = None,
                *,
                padding_rule: str = 'micronet',
                depthwise_as_conv: bool = False,
                param_bits: int = PARAM_BITS) -> list[LayerCost]:
  """Per-layer MicroNet costs of a built model, in layer order.

  A layer's density comes from `densities[name]` when given (planned
  densities, e.g. from `rigl_tf.distributions` before any training), else
  from its masks when it is a masked wrapper (the mean of the kernel's mask),
  else 1 (dense). Nested models are walked recursively; input layers are
  skipped; a layer applied several times gives one record per call (the
  same name; its weights are stored once, see `summarize`). A separable
  convolution gives two records, `<name>/depthwise_kernel` and
  `<name>/pointwise_kernel`.

  Args:
    model: a built tf_keras Functional or Sequential model (static input
      shape).
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
      shape is unknown (a subclassed model that was never called).
  """
  if padding_rule not in PADDING_RULES:
    raise ValueError(f'Unknown padding_rule {padding_rule!r}; choose one of '
                     f'{PADDING_RULES}.')
  densities = dict(densities or {})
  costs = []
  for layer, input_shape, output_shape in _walk(model):
    inner = layer.layer if _is_masked(layer) else layer
    ops_fn = _ops_function(inner)
    if ops_fn is None:
      costs.append(
          LayerCost(
              name=inner.name,
              kind=type(inner).__name__,
              input_shape=_shape_without_batch(input_shape),
              output_shape=_shape_without_batch(output_shape),
              n_weights=int(inner.count_params()) if inner.built else 0,
              param_bits=param_bits,
              maskable=_is_masked(layer) or _is_maskable(inner)))
      continue
    if input_shape is None:
      raise ValueError(
          f'Cannot count layer {inner.name!r}: its input shape is unknown. '
          'Count a Functional/Sequential model built on a static input.')
    for op in ops_fn(inner, input_shape, padding_rule, depthwise_as_conv):
      name = inner.name + op.suffix
      n_weights = int(np.prod(op.kernel.shape))
      n_nonzero = None
      if name in densities:
        n_nonzero = n_weights * _check_density(name, densities[name])
      elif _is_masked(layer):
        n_nonzero = _mask_nonzeros(layer, op.kernel)
      if n_nonzero is None:
        n_nonzero = float(n_weights)
      costs.append(
          LayerCost(
              name=name,
              kind=op.kind,
              input_shape=_shape_without_batch(input_shape),
              output_shape=op.output_shape,
              kernel_shape=tuple(int(d) for d in op.kernel.shape),
              n_weights=n_weights,
              n_nonzero=float(n_nonzero),
              positions=op.positions,
              out_channels=op.out_channels,
              counted=True,
              param_bits=param_bits,
              bias_relu=op.bias_relu))
  _check_names(densities, costs)
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
  """Ordered layer name -> kernel shape of the counted layers.

  This is the `shapes` argument of `rigl_tf.distributions.get_sparsities`.
  """
  return {c.name: c.kernel_shape for c in costs if c.counted}


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
  """Kernel shapes the distribution covers (what `sparsify` would mask)."""
  shapes = kernel_shapes(costs)
  if mask_depthwise:
    return shapes
  # Depthwise kernels stay dense and outside the budget (rigl_tf.layers).
  depthwise = {c.name for c in costs if c.kind.startswith('DepthwiseConv')}
  return {n: s for n, s in shapes.items() if n not in depthwise}
