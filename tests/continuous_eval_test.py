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
"""--mode=eval: evaluation that follows the checkpoints of a training run."""

import json
import os
import re
import subprocess
import sys

import gin
import tensorflow as tf

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'mnist', 'train_eval.py')
QUICKSTART = os.path.join(ROOT, 'configs', 'mnist', 'quickstart_digits.gin')
BINDINGS = ['train_eval.train_steps = 300', 'train_eval.checkpoint_every = 100',
            'train_eval.log_every = 100', 'train_eval.keep_checkpoints = 5']


def _configure(*bindings):
  gin.clear_config()
  train.parse_gin([QUICKSTART], ['train_eval.quiet = True', *bindings])


class ContinuousEvalTest(tf.test.TestCase):

  def test_follows_training_until_its_last_checkpoint(self):
    output_dir = self.create_tempdir().full_path
    # The evaluator starts first and waits for checkpoints.
    evaluator = subprocess.Popen(
        [sys.executable, SCRIPT, f'--gin_config={QUICKSTART}',
         f'--output_dir={output_dir}', '--mode=eval',
         *[f'--gin_bindings={b}' for b in BINDINGS],
         '--gin_bindings=train_eval.eval_timeout = 240'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    try:
      _configure(*BINDINGS)
      train.train_eval(output_dir=output_dir, mode='train')
      out, err = evaluator.communicate(timeout=240)
    finally:
      if evaluator.poll() is None:
        evaluator.kill()
    self.assertEqual(evaluator.returncode, 0, err[-3000:])
    steps = [int(s) for s in re.findall(r'^step (\d+): test accuracy', out,
                                        re.MULTILINE)]
    # It stops by itself after the last step's checkpoint; the ones before
    # it saw are in increasing order, each once.
    self.assertEqual(steps[-1], 300)
    self.assertEqual(steps, sorted(set(steps)))
    self.assertTrue(set(steps) <= {100, 200, 300}, steps)
    with open(os.path.join(output_dir, 'eval_report.json')) as f:
      report = json.load(f)
    self.assertEqual(report['step'], 300)
    self.assertEqual(report['eval_examples'], 360)
    _configure(*BINDINGS)
    once = train.train_eval(output_dir=output_dir, mode='eval_once')
    self.assertEqual(report['accuracy'], once['accuracy'])
    self.assertEqual(report['checkpoint'], once['checkpoint'])
    events = tf.io.gfile.glob(os.path.join(output_dir, 'eval', 'events*'))
    summary_steps = {
        e.step for path in events
        for e in tf.compat.v1.train.summary_iterator(path)
        if any(v.tag == 'accuracy' for v in e.summary.value)}
    self.assertEqual(summary_steps, set(steps))

  def test_stops_after_the_timeout_without_checkpoints(self):
    _configure(*BINDINGS, 'train_eval.eval_timeout = 1')
    output_dir = self.create_tempdir().full_path
    self.assertEqual(train.train_eval(output_dir=output_dir, mode='eval'),
                     {})


if __name__ == '__main__':
  tf.test.main()
