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
"""The trainer's loop: steps without a mask update run the static step."""

import contextlib

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import test_util
import tf_keras as keras

from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf.train import loop as loop_lib


class _TensorSchedule(methods.MaskUpdater):
  """An updater whose schedule is only known as a tensor."""

  def is_update_step(self, step):
    return tf.equal(tf.math.floormod(tf.cast(step, tf.int64), 7), 0)


class UpdateSegmentsTest(parameterized.TestCase):

  def test_drop_grow_schedule(self):
    rigl = methods.RigL(update_frequency=100, begin_step=0, end_step=1000)
    self.assertEqual(loop_lib.update_segments(rigl, 95, 20),
                     [(5, False), (1, True), (14, False)])
    self.assertEqual(loop_lib.update_segments(rigl, 100, 1), [(1, True)])
    self.assertEqual(loop_lib.update_segments(rigl, 1001, 300),
                     [(300, False)])
    every = methods.SET(update_frequency=1, begin_step=2, end_step=3)
    self.assertEqual(loop_lib.update_segments(every, 0, 6),
                     [(2, False), (1, True), (1, True), (2, False)])

  def test_static_and_snip(self):
    self.assertEqual(
        loop_lib.update_segments(methods.MaskUpdater(), 0, 50),
        [(50, False)])
    snip = methods.SNIP(num_batches=2)
    self.assertEqual(loop_lib.update_segments(snip, 0, 5),
                     [(1, True), (1, True), (3, False)])

  def test_schedule_given_as_a_tensor_runs_the_general_loop(self):
    self.assertEqual(loop_lib.update_segments(_TensorSchedule(), 3, 20),
                     [(20, True)])
    self.assertEqual(loop_lib.update_segments(_TensorSchedule(), 3, 0), [])


class SplitLoopTest(parameterized.TestCase):
  """The split loop ends bit for bit where the one general loop does."""

  def _train(self, method, num_steps, split):
    strategy = tf.distribute.get_strategy()
    updater = methods.create(method, update_frequency=3,
                                   begin_step=2, end_step=12, seed=1)
    model, optimizer = test_util.build_sparse(
        strategy, lambda: test_util.small_mlp(seed=0), 0.8,
        lambda: keras.optimizers.SGD(0.1, momentum=0.9), updater=updater)
    metrics = {'loss': keras.metrics.Mean(),
               'accuracy': keras.metrics.SparseCategoricalAccuracy()}
    loop = loop_lib.make_train_loop(  # pylint: disable=protected-access
        strategy, model, optimizer, 10, 32, 0.0, metrics, False)
    iterator = iter(test_util.random_data(num_steps).repeat())
    initial = [mw.mask.numpy().copy() for mw in optimizer.masked_weights]
    # Two calls, as the trainer makes between events.
    for count in (num_steps // 2, num_steps - num_steps // 2):
      if split:
        loop(iterator, tf.constant(count))
      else:
        loop.with_updates(iterator, tf.constant(count))
    self.assertEqual(int(optimizer.iterations.numpy()), num_steps)
    changed = sum(int(np.sum(mw.mask.numpy() != m))
                  for mw, m in zip(optimizer.masked_weights, initial))
    self.loop, self.iterator, self.optimizer = loop, iterator, optimizer
    return [v.numpy() for v in model.variables], changed

  @parameterized.parameters('rigl', 'snfs')
  def test_equals_the_general_loop(self, method):
    general, changed = self._train(method, 15, split=False)
    split, _ = self._train(method, 15, split=True)
    self.assertGreater(changed, 0)  # The updates fired.
    self.assertLen(split, len(general))
    for a, b in zip(general, split):
      np.testing.assert_array_equal(a, b)

  def test_steps_without_updates_have_no_condition(self):
    self._train('rigl', 3, split=True)

    def conditions(fn, off):
      context = (optimizers.mask_updates_off(self.optimizer) if off
                 else contextlib.nullcontext())
      with context:
        graph = fn.get_concrete_function(
            self.iterator, tf.constant(1)).graph.as_graph_def()
      nodes = list(graph.node)
      for function in graph.library.function:
        nodes.extend(function.node_def)
      return sum(n.op in ('If', 'StatelessIf') for n in nodes)

    self.assertGreater(conditions(self.loop.with_updates, off=False), 0)
    self.assertEqual(conditions(self.loop.without_updates, off=True), 0)


if __name__ == '__main__':
  tf.test.main()
