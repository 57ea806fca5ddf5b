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
"""`static` (a fixed random mask) and `dense` (no masks): the baselines."""

import gin

from rigl_tf.methods import base
from rigl_tf.methods import registry


@registry.register('static')
@gin.configurable
class Static(base.MaskUpdater):
  """RigL's "static"/"scratch" baseline: the initial mask never changes.

  Its training cost is the base class's, 3 f_S per step, and its ITOP rate
  equals its density.
  """


@registry.register('dense')
@gin.configurable
class DenseTraining(base.MaskUpdater):
  """Dense training: the model is not sparsified (the reference baseline)."""

  sparse = False

  @classmethod
  def training_flops_per_step(cls, costs):
    """Dense training: 3 f_D (forward, input and weight gradients)."""
    return 3.0 * costs.f_dense
