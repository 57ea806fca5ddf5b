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
"""benchmarks/step_overhead.py runs on tiny settings and writes every case.

Only the structure is checked (cases, keys, finite values, ratios that are
the quotients of the times they report), never a timing.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'benchmarks', 'step_overhead.py')
# --methods=static,rigl (the other methods run the same step code) and the
# Keras 3 cases (--keras3_methods' default: static, rigl).
STEP_CASES = ['dense', 'tfmot', 'static', 'rigl', 'keras3_dense',
              'keras3_static', 'keras3_rigl']


def _run(*args):
  """Runs the benchmark with `args`; (returncode, stdout, stderr, json)."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'result.json')
    result = subprocess.run(
        [sys.executable, SCRIPT, f'--json={path}', *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT))
    written = None
    if os.path.exists(path):
      with open(path) as f:
        written = json.load(f)
  return result.returncode, result.stdout, result.stderr, written


class StepCasesTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # A 16-input LeNet-300-100, batch 4, ΔT = 3, one timed round.
    cls.returncode, cls.stdout, cls.stderr, cls.result = _run(
        '--model=lenet_300_100', '--batch=4', '--image_size=4',
        '--delta_t=3', '--rounds=1', '--threads=1', '--methods=static,rigl')

  def test_runs_and_writes_every_case(self):
    self.assertEqual(self.returncode, 0, self.stderr[-2000:])
    self.assertEqual(list(self.result['cases']), STEP_CASES)
    self.assertEqual(self.result['config']['delta_t'], 3)
    self.assertEqual(self.result['config']['batch'], 4)
    self.assertEqual(self.result['threads'], 1)

  def test_values_are_finite_and_ratios_are_quotients(self):
    cases = self.result['cases']
    for name, row in cases.items():
      for key in ('step_ms', 'amortised_ms', 'update_step_ms'):
        self.assertTrue(math.isfinite(row[key]) and row[key] > 0,
                        (name, key, row[key]))
      self.assertIsNotNone(row['loss'], name)  # Trained, finite loss.
      own = 'keras3_dense' if name.startswith('keras3_') else 'dense'
      for ref, key in (('dense', 'dense'), ('tfmot', 'tfmot'),
                       (own, 'own_dense')):
        self.assertAlmostEqual(
            row[f'step_vs_{key}'], row['step_ms'] / cases[ref]['step_ms'])
        self.assertAlmostEqual(
            row[f'amortised_vs_{key}'],
            row['amortised_ms'] / cases[ref]['amortised_ms'])
    # A round is one update step and ΔT - 1 other steps.
    for row in cases.values():
      self.assertAlmostEqual(
          row['amortised_ms'], (row['update_step_ms'] + 2 * row['step_ms']) / 3)
    self.assertEqual(cases['dense']['step_vs_dense'], 1.0)
    self.assertEqual(cases['keras3_dense']['step_vs_own_dense'], 1.0)
    self.assertEqual(cases['tfmot']['amortised_vs_tfmot'], 1.0)

  def test_table_ends_with_the_ratios(self):
    lines = self.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.startswith('ratios'))
    self.assertEqual([line.split()[0] for line in lines[header + 2:]],
                     STEP_CASES)


class TrainerLoopTest(unittest.TestCase):

  def test_times_every_step_after_the_first(self):
    returncode, stdout, stderr, result = _run(
        '--trainer_loop', '--trainer_steps=25', '--trainer_repeats=1',
        '--threads=1')
    self.assertEqual(returncode, 0, stderr[-2000:])
    rows = result['trainer_loop']
    self.assertEqual(list(rows), ['dense', 'static', 'rigl'])
    for name, row in rows.items():
      # The run took its 25 steps; the 24 after the first were timed.
      self.assertEqual(row['steps'], 25, name)
      self.assertEqual(row['timed_steps'], 24, name)
      self.assertTrue(math.isfinite(row['loss']), name)
      self.assertAlmostEqual(row['steps_per_s'] * row['seconds'], 24,
                             delta=1e-6 * 24)
      self.assertTrue(0 < row['fraction_in_compiled_loop'] <= 1, name)
      self.assertGreaterEqual(row['loop_steps_per_s'], row['steps_per_s'])
    self.assertIn('steps/s', stdout)


if __name__ == '__main__':
  unittest.main()
