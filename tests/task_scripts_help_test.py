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
"""Every task script answers --help with its flags, choices and models."""

import os
import subprocess
import sys

from absl.testing import absltest
from absl.testing import parameterized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TaskScriptHelpTest(parameterized.TestCase):

  @parameterized.parameters(
      ('cifar_wrn', ['@wrn_22_2', '@wrn_28_10', '@resnet20']),
      ('imagenet_resnet', ['@resnet', '@mobilenet_v1', '@mobilenet_v2']))
  def test_help_exits_zero_and_lists_choices(self, task, models):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, task, 'train_eval.py'), '--help'],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT), cwd=self.create_tempdir())
    self.assertEqual(result.returncode, 0, result.stderr)
    out = result.stdout
    for flag in ('gin_config', 'mode', 'strategy', 'cpu_replicas'):
      self.assertIn(f'  --{flag} (default: ', out)
    self.assertRegex(out, r'train_eval\.method: .*granet.*rigl')
    for model in models:
      self.assertIn(model, out)


if __name__ == '__main__':
  absltest.main()
