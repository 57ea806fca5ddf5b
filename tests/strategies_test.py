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
"""Tests for rigl_tf.strategies."""

from absl.testing import parameterized
import tensorflow as tf
import test_util

from rigl_tf import strategies


class StrategiesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      (None, None, False, True),       # Single machine.
      ('worker', 0, False, True),      # Worker 0 of a chief-less cluster.
      ('worker', 1, False, False),
      ('worker', 0, True, False),      # The cluster has a chief task.
      ('chief', 0, True, True),
      ('evaluator', 0, False, False),
  )
  def test_is_chief_task(self, task_type, task_id, has_chief, expected):
    self.assertEqual(
        strategies.is_chief_task(task_type, task_id, has_chief), expected)

  def test_default_and_mirrored(self):
    self.assertEqual(strategies.get_strategy('default').num_replicas_in_sync,
                     1)
    # 'mirrored' is every local GPU; without one, the 2 logical CPUs of
    # conftest.py.
    gpus = tf.config.list_logical_devices('GPU')
    mirrored = strategies.get_strategy('mirrored')
    self.assertEqual(mirrored.num_replicas_in_sync, len(gpus) or 2)
    self.assertTrue(strategies.is_chief(mirrored))
    # Built from the logical CPUs explicitly: 2 replicas on any machine.
    self.assertEqual(
        test_util.two_replica_strategy().num_replicas_in_sync, 2)

  def test_unknown(self):
    with self.assertRaisesRegex(ValueError, "Unknown strategy 'gpu'"):
      strategies.get_strategy('gpu')


if __name__ == '__main__':
  tf.test.main()
