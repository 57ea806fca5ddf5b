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
"""MultiWorkerMirroredStrategy with two localhost worker processes.

Each worker is a subprocess with its own TF_CONFIG (free loopback ports,
see `test_util.run_workers`).
"""

import os
import sys
import textwrap

import numpy as np
import tensorflow as tf
import test_util

ROOT = test_util.ROOT

# Trains a sparse MLP with SparseOptimizer and saves its masks and weights.
_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras
    from rigl_tf import layers
    import test_util

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    model, optimizer = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.9,
        lambda: keras.optimizers.SGD(0.05, momentum=0.9), seed=3)
    test_util.train(strategy, model, optimizer,
                    test_util.random_data(20, batch_size=32))
    arrays = {}
    for mw in layers.get_masked_weights(model):
      arrays[mw.name + '/mask'] = mw.mask.numpy()
      arrays[mw.name + '/weight'] = mw.weight.numpy()
    arrays['step'] = np.array(int(optimizer.iterations.numpy()))
    np.savez(sys.argv[1], **arrays)
""")


class MultiWorkerTest(tf.test.TestCase):

  def test_two_workers_end_with_identical_masks_and_weights(self):
    script = os.path.join(self.get_temp_dir(), 'worker.py')
    with open(script, 'w') as f:
      f.write(_WORKER)
    outputs = [os.path.join(self.get_temp_dir(), f'worker{i}.npz')
               for i in range(2)]
    results = test_util.run_workers(
        [[sys.executable, script, out] for out in outputs])
    for rc, _, err in results:
      self.assertEqual(rc, 0, err[-3000:])
    first, second = (np.load(path) for path in outputs)
    self.assertEqual(int(first['step']), 20)
    self.assertEqual(sorted(first.files), sorted(second.files))
    for name in first.files:
      # Bit-identical: both workers apply the same all-reduced update.
      self.assertAllEqual(first[name], second[name], msg=name)
    masks = [n for n in first.files if n.endswith('/mask')]
    self.assertLen(masks, 3)
    for name in masks:
      weight = first[name.replace('/mask', '/weight')]
      self.assertEqual(np.count_nonzero(weight * (1 - first[name])), 0)

  def test_train_eval_multi_worker_and_resume(self):
    output_dir = self.create_tempdir().full_path

    def argv(steps):
      return [
          sys.executable, os.path.join(ROOT, 'mnist', 'train_eval.py'),
          '--gin_config=' + os.path.join(ROOT, 'configs', 'mnist',
                                         'quickstart_digits.gin'),
          f'--output_dir={output_dir}', '--strategy=multi_worker',
          f'--gin_bindings=train_eval.train_steps = {steps}',
          '--gin_bindings=train_eval.log_every = 100',
          '--gin_bindings=train_eval.checkpoint_every = 100']

    for rc, _, err in test_util.run_workers([argv(100), argv(100)]):
      self.assertEqual(rc, 0, err[-3000:])
    # Both workers resume from the chief's checkpoint (worker 1's scratch
    # copy is gone), so they stay in step and finish.
    results = test_util.run_workers([argv(200), argv(200)])
    for rc, out, err in results:
      self.assertEqual(rc, 0, err[-3000:])
      self.assertIn('replicas=2', out)
      self.assertIn(f'Resumed from {output_dir}/ckpt-100 at step 100.', out)
      self.assertIn('Final test accuracy', out)
      self.assertIn('(360 examples)', out)
    # Only worker 0 (the chief) leaves files; worker 1's scratch is gone.
    self.assertEqual(tf.train.latest_checkpoint(output_dir),
                     os.path.join(output_dir, 'ckpt-200'))
    self.assertTrue(os.path.exists(os.path.join(output_dir, 'report.json')))
    self.assertFalse(os.path.exists(os.path.join(output_dir, '.worker_tmp')))
    # Both workers evaluated the same model.
    accuracies = [out.split('Final test accuracy: ')[1].split('%')[0]
                  for _, out, _ in results]
    self.assertEqual(accuracies[0], accuracies[1])


if __name__ == '__main__':
  tf.test.main()
