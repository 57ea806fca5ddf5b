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
"""benchmarks/sparse_inference.py --tiny runs and prints consistent tables."""

import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(text, first_header):
  """The cells of the Markdown table whose header starts `first_header`."""
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines)
               if line.startswith(first_header))
  rows = []
  for line in lines[start + 2:]:
    if not line.startswith('|'):
      break
    rows.append([cell.strip() for cell in line.strip('|').split('|')])
  return rows


class SparseInferenceBenchmarkTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'benchmarks',
                                      'sparse_inference.py'), '--tiny'],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    cls.returncode, cls.stdout = result.returncode, result.stdout
    cls.stderr = result.stderr

  def test_runs(self):
    self.assertEqual(self.returncode, 0, self.stderr[-2000:])

  def test_exported_model_table(self):
    rows = _rows(self.stdout, '| model |')
    # LeNet-300-100 at 90%: 2 runtimes x batch 1 and the serving batch 4.
    self.assertEqual([(r[0], r[1], r[4], r[5]) for r in rows],
                     [('lenet_300_100', '0.90', runtime, batch)
                      for runtime in ('XNNPack', 'builtin')
                      for batch in ('1', '4')])
    for row in rows:
      dense_kb, sparse_kb = (float(c.replace(',', '')) for c in row[2:4])
      # Every one of the 266,200 float32 weights is stored in the dense file.
      self.assertGreater(dense_kb, 4 * 266_200 / 1e3)
      self.assertLess(sparse_kb, dense_kb / 4)
      dense_ms, sparse_ms = float(row[6]), float(row[7])
      speedup = float(row[8].rstrip('x'))
      self.assertAlmostEqual(speedup, dense_ms / sparse_ms,
                             delta=0.01 + 0.01 * speedup)

  def test_kernel_table_products_equal_the_dense_one(self):
    rows = _rows(self.stdout, '| layer (batch 1) |')
    kernels = ['tf.matmul (dense)', 'tf.sparse COO',
               'tf CSR SparseMatrixMatMul', 'scipy CSR']
    self.assertEqual([(r[0], r[2]) for r in rows],
                     [(layer, k) for layer in ('Dense 256->256',
                                               '1x1 conv 4x4x64->64')
                      for k in kernels])
    for row in rows:
      self.assertLessEqual(float(row[5]), 1e-4, row)
      self.assertGreater(float(row[3].replace(',', '')), 0)
      if row[2] == kernels[0]:
        self.assertEqual(row[4], '1.00x')


if __name__ == '__main__':
  unittest.main()
