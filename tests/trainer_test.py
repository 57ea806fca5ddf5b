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
"""End-to-end tests of the training loop on the offline digits data."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from absl.testing import parameterized
import gin
import numpy as np
import tensorflow as tf
import test_util

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import errors
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'mnist', 'train_eval.py')
QUICKSTART = os.path.join(ROOT, 'configs', 'mnist', 'quickstart_digits.gin')


def _configure(*bindings):
  gin.clear_config()
  train.parse_gin([QUICKSTART], ['train_eval.quiet = True', *bindings])


def _model_variables(ckpt_dir):
  """name -> value of every model variable in the latest checkpoint."""
  reader = tf.train.load_checkpoint(ckpt_dir)
  return {
      name: reader.get_tensor(name)
      for name in reader.get_variable_to_shape_map()
      if name.startswith('model/') and 'OPTIMIZER_SLOT' not in name
  }


def _run_script(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run(
      [sys.executable, SCRIPT, f'--gin_config={QUICKSTART}', *args],
      capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


class DigitsAccuracyTest(parameterized.TestCase):

  # The dense bar is above what a logistic regression reaches (96.4%); at
  # 90% a static mask is not tested against a bar a logistic regression
  # would pass: dynamic_sparse_digits_test.py compares methods instead.
  @parameterized.named_parameters(
      ('dense_lenet_300_100', 'dense', 0.0, 0.97),
      ('static_erk_90', 'static', 0.9, None),
  )
  def test_reaches_accuracy(self, method, sparsity, bar):
    _configure(f"train_eval.method = '{method}'",
               f'train_eval.sparsity = {sparsity}')
    output_dir = self.create_tempdir().full_path
    report = train.train_eval(output_dir=output_dir)
    self.assertEqual(report['eval_examples'], 360)
    if bar is not None:
      self.assertGreaterEqual(report['accuracy'], bar)
    with open(os.path.join(output_dir, 'report.json')) as f:
      self.assertAlmostEqual(json.load(f)['accuracy'], report['accuracy'])
    self.assertTrue(
        os.path.exists(os.path.join(output_dir, 'operative_config.gin')))
    overall = report['masks']['overall']
    if method == 'dense':
      self.assertEqual(report['masks']['layers'], [])
    else:
      # ERK at 0.9 over 64x300, 300x100, 100x10: floor(s*n) zeros per layer.
      self.assertEqual(overall['weights'], 50_200)
      self.assertEqual(overall['nonzero'], 5_021)
      self.assertEqual(
          [row['nonzero'] for row in report['masks']['layers']],
          [2_091, 2_298, 632])

    # MicroNet FLOPs of Dense layers: 2 * nnz + n_out each (mults nnz + n_out
    # relu; adds nnz - n_out + n_out bias); 410 = 300 + 100 + 10 outputs.
    nonzero = overall['nonzero'] if method != 'dense' else 50_200
    self.assertEqual(report['inference_flops'], 2 * nonzero + 410)
    self.assertEqual(report['dense_inference_flops'], 2 * 50_200 + 410)
    # Fixed masks: training costs what inference costs, relative to dense.
    self.assertAlmostEqual(report['training_flops_ratio'],
                           report['inference_flops_ratio'])
    bits = 32 * nonzero + 32 * 410 + (50_200 if method != 'dense' else 0)
    self.assertAlmostEqual(report['size_mb'], bits / 8 / 1e6)
    summaries = tf.compat.v1.train.summary_iterator(
        tf.io.gfile.glob(os.path.join(output_dir, 'train', 'events*'))[0])
    tags = {v.tag for e in summaries for v in e.summary.value}
    self.assertIn('flops_and_density_per_layer', tags)
    self.assertIn('loss', tags)
    self.assertIn('learning_rate', tags)
    if method != 'dense':
      self.assertIn('density/fc1', tags)

    # eval_once on the final checkpoint prints the end-of-training accuracy.
    evaluated = train.train_eval(output_dir=output_dir, mode='eval_once')
    self.assertEqual(evaluated['accuracy'], report['accuracy'])
    self.assertEqual(evaluated['inference_flops'], report['inference_flops'])
    self.assertEqual(evaluated['checkpoint'],
                     os.path.join(output_dir, 'ckpt-3000'))


class DistributedTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    # 'mirrored' = 2 logical CPUs, also on a machine with one GPU.
    self.enter_context(test_util.mirrored_is_two_cpus())

  def test_one_device_equals_two_replicas(self):
    results = {}
    for strategy in ('default', 'mirrored'):
      _configure('train_eval.train_steps = 150',
                 'train_eval.checkpoint_every = 150')
      output_dir = self.create_tempdir().full_path
      report = train.train_eval(
          output_dir=output_dir, strategy_name=strategy, mode='train')
      self.assertEqual(report['step'], 150)
      results[strategy] = _model_variables(output_dir)
    one, two = results['default'], results['mirrored']
    self.assertEqual(sorted(one), sorted(two))
    mask_names = [n for n in one if 'mask' in n]
    self.assertLen(mask_names, 3)
    for name in one:
      if name in mask_names:
        self.assertAllEqual(one[name], two[name], msg=name)
      else:
        self.assertAllClose(one[name], two[name], atol=1e-5, rtol=0,
                            msg=name)


class ResumeTest(tf.test.TestCase):

  def test_kill_and_restart_resumes(self):
    output_dir = self.create_tempdir().full_path
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen(
        [sys.executable, SCRIPT, f'--gin_config={QUICKSTART}',
         f'--output_dir={output_dir}', '--mode=train',
         '--gin_bindings=train_eval.train_steps = 1000000',
         '--gin_bindings=train_eval.checkpoint_every = 200',
         '--gin_bindings=train_eval.log_every = 200'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
      deadline = time.time() + 240
      while tf.train.latest_checkpoint(output_dir) is None:
        self.assertLess(time.time(), deadline, 'no checkpoint written')
        self.assertIsNone(process.poll(), 'training exited early')
        time.sleep(0.2)
      time.sleep(1.0)  # Let it write one or two more.
    finally:
      process.send_signal(signal.SIGKILL)
      process.wait()
    latest = tf.train.latest_checkpoint(output_dir)
    killed_step = int(latest.rsplit('-', 1)[1])
    self.assertGreaterEqual(killed_step, 200)
    self.assertEqual(killed_step % 200, 0)
    before = _model_variables(output_dir)

    # A different seed would draw other masks and weights: a restart that
    # did not restore would show it.
    target = killed_step + 100
    result = _run_script(
        f'--output_dir={output_dir}', '--mode=train',
        f'--gin_bindings=train_eval.train_steps = {target}',
        '--gin_bindings=train_eval.checkpoint_every = 200',
        '--gin_bindings=train_eval.log_every = 50',
        '--gin_bindings=train_eval.seed = 5')
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn(f'Resumed from {latest} at step {killed_step}.',
                  result.stdout)
    steps = [int(s) for s in re.findall(r'^step (\d+)/', result.stdout,
                                        re.MULTILINE)]
    self.assertEqual(steps, list(range(killed_step + 50, target + 1, 50)))
    # The first loss after resuming is that of a trained model, not ~2.3.
    first_loss = float(re.search(r'^step \d+/\d+  loss ([\d.]+)',
                                 result.stdout, re.MULTILINE).group(1))
    self.assertLess(first_loss, 0.5)
    after = _model_variables(output_dir)
    self.assertEqual(tf.train.latest_checkpoint(output_dir),
                     os.path.join(output_dir, f'ckpt-{target}'))
    for name in before:
      if 'mask' in name:  # Static masks: restored, then unchanged.
        self.assertAllEqual(before[name], after[name], msg=name)
    # Weights continued from the checkpoint: 100 small steps away.
    kernel = ('model/layer_with_weights-0/layer/kernel/.ATTRIBUTES/'
              'VARIABLE_VALUE')
    self.assertLess(np.abs(before[kernel] - after[kernel]).max(), 0.5)


class ExactResumeTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    # 'mirrored' = 2 logical CPUs, also on a machine with one GPU.
    self.enter_context(test_util.mirrored_is_two_cpus())

  # Two replicas with constant-fan-in masks: the trainer checks at every
  # checkpoint that each unit keeps its count, and at the end that the
  # replicas hold the same masks.
  @parameterized.parameters(('default', 'tf_keras', 'unstructured'),
                            ('mirrored', 'tf_keras', 'constant_fan_in'),
                            ('mirrored', 'keras3', 'unstructured'))
  def test_interrupted_run_equals_uninterrupted_run(self, strategy, flavour,
                                                     structure):
    # RigL, so that updater state (ever-active masks, drop fraction) must be
    # restored too; a constant learning rate, so that a shorter first run
    # has the same schedule.
    bindings = [f"train_eval.keras = '{flavour}'",
                f"train_eval.structure = '{structure}'",
                "train_eval.method = 'rigl'", 'train_eval.sparsity = 0.9',
                "make_optimizer.schedule = 'constant'",
                'RigL.update_frequency = 15', 'RigL.end_step = 90',
                'train_eval.checkpoint_every = 60', 'train_eval.log_every = 10']
    straight = self.create_tempdir().full_path
    _configure('train_eval.train_steps = 120', *bindings)
    train.train_eval(output_dir=straight, strategy_name=strategy,
                         mode='train')
    resumed = self.create_tempdir().full_path
    _configure('train_eval.train_steps = 60', *bindings)
    train.train_eval(output_dir=resumed, strategy_name=strategy,
                         mode='train')
    _configure('train_eval.train_steps = 120', *bindings)
    report = train.train_eval(output_dir=resumed, strategy_name=strategy,
                              mode='train')
    if structure != 'unstructured':
      self.assertTrue(report['masks_identical_on_replicas'])
      # Every unit keeps k = n_in - floor(s * n_in) of its inputs.
      for row in report['masks']['layers']:
        n_in, units = {'fc1': (64, 300), 'fc2': (300, 100),
                       'logits': (100, 10)}[row['name']]
        self.assertEqual(row['nonzero'], units * (
            n_in - int(np.floor(row['planned'] * n_in))), row['name'])
    reader_a = tf.train.load_checkpoint(straight)
    reader_b = tf.train.load_checkpoint(resumed)
    names = [n for n in reader_a.get_variable_to_shape_map()
             if n.startswith(('model/', 'optimizer/'))]
    self.assertEqual(sorted(names), sorted(
        n for n in reader_b.get_variable_to_shape_map()
        if n.startswith(('model/', 'optimizer/'))))
    # Masks, weights, momentum slots, step and updater state: bit for bit.
    slots, state = {
        'tf_keras': ('optimizer/_variables/', 'mask_updater/_ever_active'),
        'keras3': ('optimizer/variables/0/',
                   'optimizer/method/_ever_active/')}[flavour]
    self.assertTrue(any(slots in n for n in names))
    self.assertTrue(any(state in n for n in names))
    self.assertLen([n for n in names if 'mask' in n and 'model/' in n], 3)
    for name in names:
      self.assertAllEqual(reader_a.get_tensor(name), reader_b.get_tensor(name),
                          msg=name)


class ConfigErrorsTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    # 'mirrored' = 2 logical CPUs, also on a machine with one GPU.
    self.enter_context(test_util.mirrored_is_two_cpus())

  def test_checkpoint_of_another_model_is_refused(self):
    output_dir = self.create_tempdir().full_path
    _configure('train_eval.train_steps = 20', 'train_eval.log_every = 10',
               'train_eval.checkpoint_every = 20')
    train.train_eval(output_dir=output_dir, mode='train')
    _configure("train_eval.method = 'dense'")
    with self.assertRaisesRegex(errors.UserError,
                                'does not match the configured model'):
      train.train_eval(output_dir=output_dir, mode='eval_once')
    _configure('lenet_300_100.hidden = (50,)')  # Resuming another model.
    with self.assertRaisesRegex(errors.UserError,
                                'does not match the configured model'):
      train.train_eval(output_dir=output_dir, mode='train')

  @parameterized.parameters(
      ('train_eval.log_every = 0', 'log_every must be positive'),
      ('train_eval.checkpoint_every = -5', 'checkpoint_every must be'),
      ('train_eval.jit_compile = True', 'jit_compile needs'),
      ('train_eval.batch_size = 33', 'divisible by the 2 replicas'),
      ("train_eval.method = 'rigl'\nRigL.drop_fraction = 1.5",
       r'drop_fraction must be in \[0, 1\], got 1.5'),
      ("train_eval.method = 'set'\nSET.grow_init = 'ones'",
       "Unknown grow_init 'ones'"),
  )
  def test_bad_value_before_any_output(self, binding, message):
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    _configure(binding)
    with self.assertRaisesRegex(errors.UserError, message):
      train.train_eval(output_dir=output_dir, strategy_name='mirrored')
    self.assertFalse(os.path.exists(output_dir))


class DemoTest(tf.test.TestCase):

  def test_quickstart_trains_and_reports_in_time(self):
    start = time.time()
    output_dir = self.create_tempdir().full_path
    result = _run_script(f'--output_dir={output_dir}')
    elapsed = time.time() - start
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertLess(elapsed, 120)
    accuracy = float(re.search(r'Final test accuracy: ([\d.]+)%',
                               result.stdout).group(1))
    self.assertGreaterEqual(accuracy, 95.0)
    for layer in ('fc1', 'fc2', 'logits'):
      self.assertRegex(result.stdout, rf'(?m)^{layer}\s+[\d,]+\s+[\d,]+\s+')
    self.assertRegex(result.stdout, r'(?m)^overall\s+50,200\s+5,021\s+90\.00%')


if __name__ == '__main__':
  tf.test.main()
