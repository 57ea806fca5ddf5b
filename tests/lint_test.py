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
"""The code passes ruff (Google style, pyproject.toml) and keeps its layering.

The layering is import-linter's contracts in pyproject.toml: imports point
down the layers, never up or around.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), 'lint-imports')


def _lint_imports(root):
  return subprocess.run([LINT_IMPORTS, '--no-cache'], capture_output=True,
                        text=True, cwd=root, timeout=120,
                        env=dict(os.environ, PYTHONPATH=root))


class LintTest(unittest.TestCase):

  def test_ruff_passes(self):
    result = subprocess.run(
        [sys.executable, '-m', 'ruff', 'check', '--no-cache', ROOT],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class LayeringTest(unittest.TestCase):

  def test_import_linter_contracts_are_kept(self):
    result = _lint_imports(ROOT)
    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
    self.assertIn('3 kept, 0 broken', result.stdout)

  def test_an_upward_import_breaks_the_contract(self):
    # A copy of the package where masks (a model-level piece) imports the
    # optimizer wrapper, two layers up.
    with tempfile.TemporaryDirectory() as tmp:
      shutil.copytree(os.path.join(ROOT, 'rigl_tf'),
                      os.path.join(tmp, 'rigl_tf'),
                      ignore=shutil.ignore_patterns('__pycache__'))
      shutil.copy(os.path.join(ROOT, 'pyproject.toml'), tmp)
      with open(os.path.join(tmp, 'rigl_tf', 'masks.py'), 'a') as f:
        f.write('\nfrom rigl_tf import optimizers  # noqa\n')
      result = _lint_imports(tmp)
    self.assertNotEqual(result.returncode, 0, result.stdout)
    self.assertIn('rigl_tf.masks -> rigl_tf.optimizers', result.stdout)


if __name__ == '__main__':
  unittest.main()
