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
"""Every layer call of one forward pass, at any depth, with its shapes.

A Functional model knows the shapes of its own layers' calls, but not those
of the layers called inside them (attention's projections, a custom block's
Dense layers, the layer inside `TimeDistributed`), nor does a subclassed
model. `trace_calls(model)` traces one call of the model on a batch of 1
(a graph trace: nothing is computed) and records each `Layer.__call__`, so
that the counting rules see every kernel where it is applied.
"""

import dataclasses
from typing import Any

import tensorflow as tf

from rigl_tf import compat
from rigl_tf import flavours


@dataclasses.dataclass
class Call:
  """One call of a layer: input/output shapes (batch 1 first) and the
  calls made inside it, in order."""
  layer: Any
  input_shape: tuple | None = None
  output_shape: tuple | None = None
  children: list = dataclasses.field(default_factory=list)


def _first_shape(structure):
  tensors = [t for t in tf.nest.flatten(structure) if hasattr(t, 'shape')]
  return tuple(tensors[0].shape) if tensors else None


def _input_specs(model):
  """TensorSpecs with batch 1 for one call of `model`."""
  spec = compat.keras3_input_spec(model) if flavours.is_keras3(model) else (
      model.save_spec(dynamic_batch=False))
  if spec is None:
    raise ValueError(
        f'Cannot count {model.name!r}: it was never called, so its input '
        'shape is unknown. Call it on an input (or build it) first.')
  args, kwargs = spec

  def batch_one(s):
    if s.shape.rank is None or s.shape.rank == 0 or any(
        d is None for d in s.shape[1:]):
      raise ValueError(
          f'Cannot count {model.name!r}: its input shape {s.shape} is not '
          'static. Build it on a static input shape.')
    return tf.TensorSpec((1, *s.shape[1:]), s.dtype)

  return tf.nest.map_structure(batch_one, (args, kwargs))


def trace_calls(model):
  """The calls `model` makes in one forward pass (inference mode).

  Returns:
    The `Call`s of the model's direct sublayers, with their own calls as
    `children` (a layer called twice appears twice).

  Raises:
    ValueError: if the model was never called or its input is not static.
  """
  args, kwargs = _input_specs(model)
  root = Call(model)
  stack = [root]
  layer_class = flavours.classes('layers.Layer')[
      flavours.NAMES.index(flavours.of(model))]
  original = layer_class.__call__

  def recording_call(layer, *call_args, **call_kwargs):
    call = Call(layer, _first_shape(call_args[:1] or call_kwargs))
    stack[-1].children.append(call)
    stack.append(call)
    try:
      outputs = original(layer, *call_args, **call_kwargs)
    finally:
      stack.pop()
    call.output_shape = _first_shape(outputs)
    return outputs

  def forward(args, kwargs):
    return model(*args, **{**kwargs, 'training': False})

  layer_class.__call__ = recording_call
  try:
    tf.function(forward, autograph=False).get_concrete_function(args, kwargs)
  finally:
    layer_class.__call__ = original
  (model_call,) = root.children
  return model_call.children
