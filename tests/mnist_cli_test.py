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
"""mnist/train_eval.py as a newcomer runs it: --help, --cpu_replicas, from
another working directory (bad input: fault_matrix_test)."""

import os
import subprocess
import sys

import tensorflow as tf

from rigl_tf import distributions
from rigl_tf import errors
from rigl_tf import methods
from rigl_tf.train import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'mnist', 'train_eval.py')


def _run_script(*args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True,
                        text=True, timeout=300, env=env, cwd=cwd)


class ScriptTest(tf.test.TestCase):

  def test_help_lists_flags_choices_and_gin_defaults(self):
    result = _run_script('--help', cwd=self.create_tempdir().full_path)
    self.assertEqual(result.returncode, 0, result.stderr)
    out = result.stdout
    for flag in ('gin_config', 'gin_bindings', 'output_dir', 'mode',
                 'strategy', 'cpu_replicas', 'eval_once_ckpt', 'data_dir',
                 'manual_dir', 'tpu'):
      self.assertIn(f'  --{flag} (default: ', out)
    # Fields the flags set are not gin's to bind, so --help does not offer
    # them as gin parameters.
    for field in ('output_dir', 'mode', 'strategy_name', 'eval_once_ckpt',
                  'data_dir', 'manual_dir', 'tpu'):
      self.assertNotIn(f'train_eval.{field} =', out)
    self.assertIn('train_eval.train_steps = 1000', out)
    self.assertIn(f'train_eval.method: {", ".join(methods.names())}', out)
    self.assertIn('train_eval.distribution: '
                  f'{", ".join(distributions.DISTRIBUTIONS)}', out)
    self.assertIn('train_eval.dataset: digits, mnist, cifar10', out)
    self.assertIn('train_eval.model_fn: @lenet_300_100, @lenet5', out)
    self.assertIn("train_eval.distribution = 'erk'", out)
    self.assertIn('RigL.drop_fraction = 0.3', out)
    self.assertIn("init_masks.weight_scaling = 'none'", out)

  def test_two_cpu_replicas_from_another_directory(self):
    elsewhere = self.create_tempdir().full_path
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    # A repository config given relative to the repository, from elsewhere.
    result = _run_script(
        '--gin_config=configs/mnist/quickstart_digits.gin',
        '--gin_bindings=train_eval.train_steps = 20',
        '--gin_bindings=train_eval.log_every = 10',
        '--gin_bindings=train_eval.checkpoint_every = 20',
        '--strategy=mirrored', '--cpu_replicas=2', '--mode=train',
        f'--output_dir={output_dir}', cwd=elsewhere)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('replicas=2', result.stdout)
    # Where the outputs are.
    self.assertIn(f'report:      {output_dir}/report.json', result.stdout)
    self.assertIn(f'tensorboard --logdir={output_dir}', result.stdout)
    self.assertIn(f'checkpoint:  {output_dir}/ckpt-20', result.stdout)


  def test_bad_cpu_replicas(self):
    with self.assertRaisesRegex(errors.UserError,
                                '^--cpu_replicas must be >= 1, got 0.$'):
      cli.split_cpu(0)


if __name__ == '__main__':
  tf.test.main()
