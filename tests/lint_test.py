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
"""The code passes ruff (Google style as configured in pyproject.toml)."""

import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LintTest(unittest.TestCase):

  def test_ruff_passes(self):
    result = subprocess.run(
        [sys.executable, '-m', 'ruff', 'check', '--no-cache', ROOT],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


if __name__ == '__main__':
  unittest.main()
