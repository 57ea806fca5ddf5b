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
"""The one key of stateless randomness: (seed, layer index, step, stream).

Every random choice of the library (random masks, tie orders, SET's growth,
Gem-Miner's scores) draws from a stateless RNG keyed by this function, never
from Python's `hash()` or a stateful generator, so that a seed gives the same
values on every replica, worker and machine.
"""

import tensorflow as tf

# Streams of one (seed, index, step): word = step * STREAMS + stream.
STREAMS = 8
# A prime, so that distinct (seed, index) pairs of real runs never share a
# key word (indices stay far below it).
_INDEX_STRIDE = 1_000_003


def stateless_key(seed, index, step=0, stream=0):
  """int64 [2] key of a stateless RNG: [seed·P + index, step·8 + stream].

  Args:
    seed: the run's seed (Python int or integer tensor).
    index: the layer's stable index (`MaskedWeight.index`), or another
      small integer naming what is drawn (e.g. the number of layers for a
      draw over all of them).
    step: the training step (0 for draws made once, at initialisation).
    stream: which of the draws of one (seed, index, step): 0..7 where a
      step is given. Draws made once at step 0 may use streams from 8 on.

  Returns:
    int64 tensor [2], for `tf.random.stateless_*` and `topk`.
  """
  return tf.stack([
      tf.cast(seed, tf.int64) * _INDEX_STRIDE + tf.cast(index, tf.int64),
      tf.cast(step, tf.int64) * STREAMS + tf.cast(stream, tf.int64)
  ])
