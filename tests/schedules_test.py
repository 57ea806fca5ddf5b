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
"""Tests for rigl_tf.schedules."""

import math

from absl.testing import parameterized
import tensorflow as tf

from rigl_tf import schedules


class IsUpdateStepTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      # The example: begin 1, end 4, ΔT 2 -> steps 1 and 3 only.
      ('issue_example', 1, 4, 2, [1, 3]),
      ('from_zero', 0, 10, 5, [0, 5, 10]),
      ('end_not_on_period', 2, 9, 3, [2, 5, 8]),
      ('never_stop', 3, -1, 4, [3, 7, 11, 15, 19]),
      ('every_step', 0, 4, 1, [0, 1, 2, 3, 4]),
  )
  def test_update_steps(self, begin, end, frequency, expected):
    python = [
        t for t in range(21)
        if schedules.is_update_step(t, begin, end, frequency)
    ]
    self.assertEqual(python, expected)
    steps = tf.range(21, dtype=tf.int64)
    flags = tf.map_fn(
        lambda t: schedules.is_update_step(t, begin, end, frequency), steps,
        fn_output_signature=tf.bool)
    self.assertEqual(
        [int(t) for t in tf.boolean_mask(steps, flags).numpy()], expected)

  def test_traces_under_xla(self):
    fn = tf.function(
        lambda t: schedules.is_update_step(t, 1, 4, 2), jit_compile=True)
    self.assertEqual([bool(fn(tf.constant(t))) for t in range(6)],
                     [False, True, False, True, False, False])

  def test_python_values_stay_python(self):
    self.assertIs(schedules.is_update_step(3, 1, 4, 2), True)
    self.assertIsInstance(schedules.drop_fraction_at(3, 0.3, 'cosine', 0, 10),
                          float)

  def test_rejects_zero_frequency(self):
    with self.assertRaisesRegex(ValueError, 'update_frequency'):
      schedules.is_update_step(0, 0, 10, 0)


class DropFractionTest(tf.test.TestCase, parameterized.TestCase):

  def _both(self, step, *args):
    """The Python value and the value of the tensor version (traced)."""
    python = schedules.drop_fraction_at(step, *args)
    traced = tf.function(lambda t: schedules.drop_fraction_at(t, *args))(
        tf.constant(step, tf.int64))
    return python, float(traced)

  @parameterized.parameters(0, 37, 100, 250)
  def test_constant(self, step):
    for value in self._both(step, 0.3, 'constant', 0, 100):
      self.assertAllClose(value, 0.3)

  @parameterized.parameters(
      (0, 0, 100), (25, 0, 100), (50, 0, 100), (99, 0, 100), (100, 0, 100),
      (180, 0, 100), (10, 10, 60), (30, 10, 60), (60, 10, 60))
  def test_cosine(self, step, begin, end):
    # t is the global step, as google-research/rigl's cosine_decay.
    expected = 0.3 / 2 * (1 + math.cos(
        math.pi * min(step, end - begin) / (end - begin)))
    for value in self._both(step, 0.3, 'cosine', begin, end):
      self.assertAllClose(value, expected, atol=1e-6)

  def test_cosine_key_values(self):
    self.assertAllClose(schedules.cosine_drop_fraction(0, 0.3, 0, 100), 0.3)
    self.assertAllClose(schedules.cosine_drop_fraction(50, 0.3, 0, 100), 0.15)
    self.assertAllClose(schedules.cosine_drop_fraction(100, 0.3, 0, 100), 0.0)

  @parameterized.parameters(
      ('exponential', 1.0, 0), ('exponential', 1.0, 30),
      ('exponential_3', 3.0, 30), ('exponential_2.5', 2.5, 75),
      ('exponential_3', 3.0, 100), ('exponential_3', 3.0, 140))
  def test_exponential(self, anneal, k, step):
    begin, end = 20, 120
    progress = min(max(step - begin, 0), end - begin) / (end - begin)
    expected = 0.5 * (1 - progress)**k
    for value in self._both(step, 0.5, anneal, begin, end):
      self.assertAllClose(value, expected, atol=1e-6)

  @parameterized.parameters('cosine', 'exponential_2')
  def test_no_end_step_keeps_initial_fraction(self, anneal):
    for step in (0, 10, 10_000):
      for value in self._both(step, 0.3, anneal, 0, -1):
        self.assertAllClose(value, 0.3)

  def test_parse_anneal(self):
    self.assertEqual(schedules.parse_anneal('cosine'), ('cosine', 1.0))
    self.assertEqual(schedules.parse_anneal('exponential'),
                     ('exponential', 1.0))
    self.assertEqual(schedules.parse_anneal('exponential_4'),
                     ('exponential', 4.0))
    with self.assertRaisesRegex(ValueError, 'drop_fraction_anneal'):
      schedules.parse_anneal('linear')


if __name__ == '__main__':
  tf.test.main()
