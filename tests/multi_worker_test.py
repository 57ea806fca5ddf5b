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

# Trains a sparse MLP with SparseOptimizer, in each Keras flavour, and saves
# its masks and weights.
_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    from rigl_tf import flavours
    from rigl_tf import layers
    import test_util

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    arrays = {}
    for flavour in flavours.NAMES:
      keras = flavours.module(flavour)
      model, optimizer = test_util.build_sparse(
          strategy, lambda: test_util.small_mlp(flavour=flavour), 0.9,
          lambda: keras.optimizers.SGD(0.05, momentum=0.9), seed=3)
      assert flavours.of(model) == flavours.of(optimizer) == flavour
      test_util.train(strategy, model, optimizer,
                      test_util.random_data(20, batch_size=32))
      for mw in layers.get_masked_weights(model):
        arrays[f'{flavour}/{mw.name}/mask'] = mw.mask.numpy()
        arrays[f'{flavour}/{mw.name}/weight'] = mw.weight.numpy()
      arrays[f'{flavour}/step'] = np.array(int(optimizer.iterations.numpy()))
    np.savez(sys.argv[1], **arrays)
""")


# Runs a task script and saves the final masks of the worker.
_SCRIPT_WORKER = textwrap.dedent("""
    import runpy, sys
    import numpy as np
    from rigl_tf import layers
    from rigl_tf.train import trainer

    final_report = trainer._final_report
    dump = sys.argv[1]

    def save_masks(run, output, step, last_loss):
      np.savez(dump, step=step, **{
          mw.name: mw.mask.numpy()
          for mw in layers.get_masked_weights(run.model)})
      return final_report(run, output, step, last_loss)

    trainer._final_report = save_masks
    sys.argv = [sys.argv[2]] + sys.argv[3:]
    runpy.run_path(sys.argv[0], run_name='__main__')
""")


class MultiWorkerTest(tf.test.TestCase):

  def test_two_workers_end_with_identical_masks_and_weights_in_both_flavours(
      self):
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
    for flavour in ('tf_keras', 'keras3'):
      self.assertEqual(int(first[f'{flavour}/step']), 20)
    self.assertEqual(sorted(first.files), sorted(second.files))
    for name in first.files:
      # Bit-identical: both workers apply the same all-reduced update.
      self.assertAllEqual(first[name], second[name], msg=name)
    masks = [n for n in first.files if n.endswith('/mask')]
    self.assertLen(masks, 6)  # 3 in each flavour.
    for name in masks:
      weight = first[name.replace('/mask', '/weight')]
      self.assertEqual(np.count_nonzero(weight * (1 - first[name])), 0)

  def test_train_eval_rigl_identical_masks_chief_writes_and_resume(self):
    # The task script under two workers, RigL on the digits: masks move at
    # steps 50, 100, 150 and end identical on both workers; only the chief
    # writes; a second run resumes both from the chief's checkpoint. In
    # Keras 3, whose checkpoints save variables by position (the trainer's
    # only flavour-specific part; the test above trains both flavours on
    # two workers, trainer_test.py resumes both on two replicas).
    worker = os.path.join(self.get_temp_dir(), 'script_worker.py')
    with open(worker, 'w') as f:
      f.write(_SCRIPT_WORKER)
    output_dir = self.create_tempdir().full_path
    dumps = [os.path.join(self.get_temp_dir(), f'masks{i}.npz')
             for i in range(2)]

    def argv(steps, dump):
      return [
          sys.executable, worker, dump,
          os.path.join(ROOT, 'mnist', 'train_eval.py'),
          '--gin_config=' + os.path.join(ROOT, 'configs', 'mnist',
                                         'quickstart_digits.gin'),
          f'--output_dir={output_dir}', '--strategy=multi_worker',
          "--gin_bindings=train_eval.method = 'rigl'",
          "--gin_bindings=train_eval.keras = 'keras3'",
          '--gin_bindings=RigL.update_frequency = 50',
          '--gin_bindings=RigL.end_step = 150',
          f'--gin_bindings=train_eval.train_steps = {steps}',
          '--gin_bindings=train_eval.log_every = 100',
          '--gin_bindings=train_eval.checkpoint_every = 100']

    for rc, _, err in test_util.run_workers([argv(100, d) for d in dumps]):
      self.assertEqual(rc, 0, err[-3000:])
    with np.load(dumps[0]) as saved_first:
      first_masks = dict(saved_first)
    # Both workers resume from the chief's checkpoint (worker 1's scratch
    # copy is gone), so they stay in step and finish.
    results = test_util.run_workers([argv(200, d) for d in dumps])
    for rc, out, err in results:
      self.assertEqual(rc, 0, err[-3000:])
      self.assertIn('replicas=2', out)
      self.assertIn(f'Resumed from {output_dir}/ckpt-100 at step 100.', out)
      self.assertIn('Final test accuracy', out)
      self.assertIn('(360 examples)', out)
    first, second = (np.load(path) for path in dumps)
    self.assertEqual(int(first['step']), 200)
    self.assertLen(first.files, 4)  # 3 masks and the step.
    for name in first.files:
      self.assertAllEqual(first[name], second[name], msg=name)
    # The updates after step 100 moved the masks.
    self.assertFalse(all(np.array_equal(first[n], first_masks[n])
                         for n in first.files if n != 'step'))
    # Only worker 0 (the chief) leaves files; worker 1's scratch is gone.
    self.assertCountEqual(
        os.listdir(output_dir),
        ['checkpoint', 'ckpt-100.index', 'ckpt-100.data-00000-of-00001',
         'ckpt-200.index', 'ckpt-200.data-00000-of-00001',
         'operative_config.gin', 'report.json', 'train', 'eval'])
    # The chief's checkpoint holds the masks both workers ended with.
    reader = tf.train.load_checkpoint(output_dir)
    saved = sorted(reader.get_tensor(n).tobytes()
                   for n in reader.get_variable_to_shape_map()
                   if n.startswith('model/') and 'mask' in n)
    self.assertEqual(saved, sorted(first[n].tobytes()
                                   for n in first.files if n != 'step'))
    # Both workers evaluated the same model.
    accuracies = [out.split('Final test accuracy: ')[1].split('%')[0]
                  for _, out, _ in results]
    self.assertEqual(accuracies[0], accuracies[1])

if __name__ == '__main__':
  tf.test.main()
