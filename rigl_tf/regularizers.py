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
"""Weight decay with the RigL code's convention, for the model builders."""

from rigl_tf import flavours


def weight_decay_l2(weight_decay: float):
  """L2 regularizer adding (weight_decay / 2) * sum(w ** 2), or None for 0.

  This is TF1's `tf.nn.l2_loss` convention used by the RigL code: the
  penalty's gradient is weight_decay * w. Keras' L2(c) adds c * sum(w ** 2),
  hence c = weight_decay / 2.

  Args:
    weight_decay: the coefficient lambda (0 or None for no decay).

  Returns:
    A `keras.regularizers.L2` of the flavour being built
    (`flavours.keras()`), or None.
  """
  if not weight_decay:
    return None
  return flavours.keras().regularizers.L2(weight_decay / 2.0)
