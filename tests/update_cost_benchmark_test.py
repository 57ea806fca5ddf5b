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
"""benchmarks/update_cost.py times real updates and refuses bad flags."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'benchmarks', 'update_cost.py')


def _run(*flags):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, SCRIPT, *flags],
                        capture_output=True, text=True, cwd=ROOT, env=env,
                        timeout=600)


def _erk_budget():
  """Active weights of LeNet-300-100 (784 inputs) at ERK 90%."""
  sys.path.insert(0, ROOT)
  from mnist import models  # pylint: disable=g-import-not-at-top
  from rigl_tf import distributions  # pylint: disable=g-import-not-at-top
  from rigl_tf import layers  # pylint: disable=g-import-not-at-top
  from rigl_tf import masks  # pylint: disable=g-import-not-at-top
  model = layers.sparsify(models.lenet_300_100(input_shape=(784,)))
  sparsities = masks.get_layer_sparsities(model, 0.9, 'erk')
  return sum(distributions.num_ones(sparsities[mw.name], mw.size)
             for mw in layers.get_masked_weights(model))


class UpdateCostBenchmarkTest(unittest.TestCase):

  def test_lenet_updates_keep_the_counts(self):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'cost.json')
      result = _run('--models=lenet_300_100', '--methods=rigl',
                    '--repeats=1', f'--json={path}')
      self.assertEqual(result.returncode, 0, result.stderr[-2000:])
      with open(path) as f:
        lenet = json.load(f)['models']['lenet_300_100']
    self.assertEqual(lenet['batch'], 100)
    for method in ('rigl',):
      row = lenet['methods'][method]
      # 784*300 + 300*100 + 100*10 maskable weights.
      self.assertEqual(row['maskable_weights'], 266_200)
      # The ERK 90% budget, unchanged by 3 drop/grow updates (each layer
      # keeps its count, so the total too).
      self.assertEqual(row['active_after_updates'], _erk_budget())
      self.assertAlmostEqual(row['update_in_dense_steps'],
                             row['update_ms'] / lenet['dense_step_ms'])

  def test_unknown_model_is_one_error_line(self):
    result = _run('--models=lenet_301')
    self.assertNotEqual(result.returncode, 0)
    self.assertEqual(result.stdout, '')
    last = result.stderr.strip().splitlines()[-1]
    self.assertTrue(last.startswith('error: unknown model or method lenet_301'),
                    last)


if __name__ == '__main__':
  unittest.main()
