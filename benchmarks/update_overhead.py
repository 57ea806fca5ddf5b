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
r"""What dynamic sparse training costs on top of static sparse training.

  env/bin/python benchmarks/update_overhead.py [--steps=1500]

LeNet-300-100 on 28x28 inputs, batch 100, 95% sparse, SGD with Nesterov
momentum, in-memory data, on whatever device TensorFlow picks. Prints

* step-time ratios against static masks: with updates that never fire (the
  per-step bookkeeping of the updater) and with an update every 100 steps;
* the time of one layer's drop/grow (784x300 kernel) compiled with XLA, as
  the training loop runs it, against the same function without XLA.

The first 200 steps (tracing, compilation) are not timed.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from rigl_tf import masks  # noqa: E402
from rigl_tf import test_util  # noqa: E402
from rigl_tf import updaters  # noqa: E402

_STEPS = flags.DEFINE_integer('steps', 1500, 'Timed training steps.')
_WARMUP = 200


def _steps_per_second(updater_fn, dataset, steps):
  strategy = tf.distribute.get_strategy()
  model, optimizer = test_util.build_sparse(
      strategy,
      lambda: test_util.small_mlp(input_shape=(28, 28, 1), hidden=(300, 100)),
      0.95,
      lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
      updater=updater_fn() if updater_fn else None)
  marks = {}

  def mark(i):
    if i in (_WARMUP, _WARMUP + steps):
      marks[i] = time.perf_counter()

  test_util.train(strategy, model, optimizer, dataset, after_step=mark)
  return steps / (marks[_WARMUP + steps] - marks[_WARMUP])


def _seconds_per_call(fn, args, repeats=20):
  fn(*args)[0].numpy()  # Compile.
  start = time.perf_counter()
  for _ in range(repeats):
    fn(*args)[0].numpy()
  return (time.perf_counter() - start) / repeats


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  steps = _STEPS.value
  dataset = test_util.random_data(_WARMUP + steps + 1, batch_size=100,
                                  input_shape=(28, 28, 1)).cache()
  for _ in dataset:  # Fill the cache before timing.
    pass
  never = dict(begin_step=10**9, end_step=10**9 + 1)
  every_100 = dict(update_frequency=100, end_step=10**9)
  cases = {
      'static': None,
      'set, no update': lambda: updaters.get_updater('set', **never),
      'rigl, no update': lambda: updaters.get_updater('rigl', **never),
      'set, update every 100': lambda: updaters.get_updater('set', **every_100),
      'snfs, update every 100': lambda: updaters.get_updater(
          'snfs', **every_100),
      'rigl, update every 100': lambda: updaters.get_updater(
          'rigl', **every_100),
  }
  rates = {name: _steps_per_second(fn, dataset, steps)
           for name, fn in cases.items()}
  print(f'device: {tf.config.list_logical_devices()[-1].name}; '
        f'{steps} timed steps')
  print(f'{"case":<26}{"steps/s":>10}{"time / static":>16}')
  for name, rate in rates.items():
    print(f'{name:<26}{rate:>10.1f}{rates["static"] / rate:>16.2f}')

  shape = (784, 300)
  mask = masks.random_mask(shape, int(0.05 * 784 * 300), 0, 0)
  weight = tf.random.normal(shape) * mask
  args = (mask, weight, tf.abs(tf.random.normal(shape)), tf.constant(3000),
          tf.constant(3000), tf.constant([1, 2], tf.int64), tf.constant(0.0))
  xla = _seconds_per_call(updaters.drop_and_grow, args)
  plain = _seconds_per_call(
      tf.function(updaters.drop_and_grow.python_function), args)
  print(f'drop/grow of a 784x300 layer: XLA {xla * 1e3:.1f} ms, without '
        f'XLA {plain * 1e3:.1f} ms, ratio XLA / plain {xla / plain:.2f}')


if __name__ == '__main__':
  app.run(main)
