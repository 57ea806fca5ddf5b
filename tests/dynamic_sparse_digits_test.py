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
"""Static vs SET vs RigL on the real (offline) digits data, over 3 seeds.

LeNet-300-100 with its hidden layers 98% sparse (uniform) and the 10-unit
output layer dense, as RigL's MNIST script keeps it; the quickstart's
optimizer (Nesterov SGD, cosine decay), 1,000 steps, masks updated every 20
steps until 75% of training. At 98% a fixed random mask leaves most hidden
units with one input or none, and loses accuracy; moving the mask recovers
it. An accuracy bar alone would also pass for a logistic regression (96.4%
on this split), so the tests compare methods, averaged over seeds 0-2.
Measured (2 CPU cores, 2026-11): static 83.9 / 91.9 / 88.3% (mean 88.1),
SET 90.8 / 93.1 / 93.3% (92.4), RigL 97.2 / 96.4 / 96.9% (96.9); ITOP rate
static 0.0395 (= density), SET 0.145, RigL 0.066-0.069.
"""

import os
import shutil
import tempfile

import gin
import numpy as np
import tensorflow as tf

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, 'configs', 'mnist', 'quickstart_digits.gin')
SEEDS = (0, 1, 2)
HIDDEN_98 = [
    'train_eval.sparsity = 0.98', "train_eval.distribution = 'uniform'",
    "train_eval.custom_sparsity_map = {'logits': 0.0}",
    'train_eval.train_steps = 1000', 'train_eval.quiet = True',
    'train_eval.checkpoint_every = 100000', 'train_eval.log_every = 1000',
    'SET.update_frequency = 20', 'RigL.update_frequency = 20',
]
# Active weights: fc1 19,200 - floor(0.98 * 19,200); fc2 30,000 - 29,400;
# logits all 1,000.
ACTIVE = {'fc1': 384, 'fc2': 600, 'logits': 1_000}
TOTAL = 19_200 + 30_000 + 1_000
DENSITY = sum(ACTIVE.values()) / TOTAL  # 0.0395

# Margins, in accuracy points of the mean over SEEDS, well inside the
# measured gaps (SET +4.4, RigL +8.8) and well above the seed-to-seed noise
# of a mean of 3.
SET_MARGIN = 0.02
RIGL_MARGIN = 0.05


def _train(output_dir, method, seed):
  gin.clear_config()
  train.parse_gin([QUICKSTART], HIDDEN_98 + [
      f"train_eval.method = '{method}'", f'train_eval.seed = {seed}'])
  return train.train_eval(output_dir=output_dir)


class MethodComparisonTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Nine short runs (about 1 minute on 2 idle cores), shared by the tests.
    cls.reports = {}
    cls.tempdir = tempfile.mkdtemp()
    for method in ('static', 'set', 'rigl'):
      for seed in SEEDS:
        output_dir = os.path.join(cls.tempdir, f'{method}_{seed}')
        cls.reports[method, seed] = _train(output_dir, method, seed)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tempdir, ignore_errors=True)
    super().tearDownClass()

  def _mean(self, method, key):
    return float(np.mean([self.reports[method, s][key] for s in SEEDS]))

  def _accuracies(self, method):
    return [round(self.reports[method, s]['accuracy'], 4) for s in SEEDS]

  def test_rigl_beats_static_by_a_margin(self):
    self.assertGreaterEqual(
        self._mean('rigl', 'accuracy'),
        self._mean('static', 'accuracy') + RIGL_MARGIN,
        f'RigL {self._accuracies("rigl")} vs static '
        f'{self._accuracies("static")}')

  def test_set_beats_static_by_a_margin(self):
    self.assertGreaterEqual(
        self._mean('set', 'accuracy'),
        self._mean('static', 'accuracy') + SET_MARGIN,
        f'SET {self._accuracies("set")} vs static '
        f'{self._accuracies("static")}')

  def test_itop_exceeds_the_density_only_when_masks_move(self):
    for seed in SEEDS:
      # Static: the ever-active weights are exactly the active ones (the
      # rate is a float32 ratio: compare the count it stands for).
      self.assertEqual(
          round(self.reports['static', seed]['itop_rate'] * TOTAL),
          sum(ACTIVE.values()))
      # Dynamic methods explored: RigL at least 1.5x, SET 2.5x the density
      # (measured 1.7x and 3.7x). A mask that barely moves fails here.
      self.assertGreater(self.reports['rigl', seed]['itop_rate'],
                         1.5 * DENSITY)
      self.assertGreater(self.reports['set', seed]['itop_rate'],
                         2.5 * DENSITY)

  def test_drop_grow_preserves_every_layer_count(self):
    for (method, seed), report in self.reports.items():
      self.assertEqual(
          {row['name']: row['nonzero'] for row in report['masks']['layers']},
          ACTIVE, f'{method} seed {seed}')

  def test_rigl_training_costs_more_than_inference(self):
    # Dense gradients every 20 steps: slightly above the static cost.
    report = self.reports['rigl', 0]
    self.assertGreater(report['training_flops_ratio'],
                       report['inference_flops_ratio'])
    self.assertAlmostEqual(self.reports['static', 0]['training_flops_ratio'],
                           self.reports['static', 0]['inference_flops_ratio'])


if __name__ == '__main__':
  tf.test.main()
