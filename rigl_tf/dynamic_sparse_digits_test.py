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
"""SET / RigL end to end on the real (offline) digits data.

LeNet-300-100 with its hidden layers 95% sparse (uniform) and the 10-unit
output layer dense, as RigL's MNIST script keeps it; the quickstart's
optimizer (3,000 steps of Nesterov SGD, cosine decay).
"""

import os

import gin
import tensorflow as tf

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, 'configs', 'mnist', 'quickstart_digits.gin')
HIDDEN_95 = [
    'train_eval.sparsity = 0.95', "train_eval.distribution = 'uniform'",
    "train_eval.custom_sparsity_map = {'logits': 0.0}",
    'train_eval.quiet = True', 'train_eval.checkpoint_every = 100000',
    'train_eval.log_every = 500',
]
# Active weights: fc1 19,200 - floor(0.95 * 19,200); fc2 30,000 - 28,500;
# logits all 1,000.
ACTIVE = {'fc1': 960, 'fc2': 1_500, 'logits': 1_000}
TOTAL = 19_200 + 30_000 + 1_000


def _train(output_dir, *bindings):
  gin.clear_config()
  train_lib.parse_gin([QUICKSTART], HIDDEN_95 + list(bindings))
  return train_lib.train_eval(output_dir=output_dir)


class DynamicSparseDigitsTest(tf.test.TestCase):

  def test_rigl_reaches_95_percent_at_95_percent_sparsity(self):
    report = _train(self.create_tempdir().full_path,
                    "train_eval.method = 'rigl'", 'RigL.end_step = 2250')
    self.assertGreaterEqual(report['accuracy'], 0.95)
    # Drop/grow preserved every layer's count exactly.
    self.assertEqual(
        {row['name']: row['nonzero'] for row in report['masks']['layers']},
        ACTIVE)
    # Connections moved: more weights were active at some point.
    self.assertGreater(report['itop_rate'], sum(ACTIVE.values()) / TOTAL)
    # RigL's training cost: dense gradients every 100 steps, slightly above
    # the static cost (= the inference ratio).
    self.assertGreater(report['training_flops_ratio'],
                       report['inference_flops_ratio'])

  def test_set_explores_more_than_static(self):
    static = _train(self.create_tempdir().full_path,
                    "train_eval.method = 'static'",
                    'train_eval.train_steps = 600')
    dynamic = _train(self.create_tempdir().full_path,
                     "train_eval.method = 'set'", 'SET.update_frequency = 50',
                     'SET.end_step = 500', 'train_eval.train_steps = 600')
    # Static masks: the ever-active weights are exactly the 3,460 active
    # ones (the rate is a float32 ratio: compare the count it stands for).
    self.assertEqual(round(static['itop_rate'] * TOTAL), 3_460)
    self.assertGreater(dynamic['itop_rate'], static['itop_rate'] + 0.01)
    self.assertEqual(
        {row['name']: row['nonzero'] for row in dynamic['masks']['layers']},
        ACTIVE)


if __name__ == '__main__':
  tf.test.main()
