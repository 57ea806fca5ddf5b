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
r"""What a sparse model buys at inference on this CPU: size and latency.

  env/bin/python benchmarks/sparse_inference.py [--tiny] [--threads=1]

Two tables, all on one CPU thread by default (latency, not throughput):

1. Exported models. LeNet-300-100 (28x28 inputs) and MobileNet v1 (224x224,
   width 1) with random ERK masks (MobileNet: depthwise kernels dense, as in
   the RigL paper), written by `rigl_tf.export` as dense and as
   sparse-encoded TFLite files; milliseconds per batch at batch 1 and at a
   serving batch, with TFLite's default runtime (the XNNPack delegate) and
   with its built-in kernels only (no delegate).
2. Sparse matrix kernels at batch 1, for a large Dense layer (4096 -> 4096)
   and a MobileNet 1x1 convolution (14x14x512 -> 512, a matmul of 196 rows):
   dense `tf.matmul` against `tf.sparse.sparse_dense_matmul` (COO), TF's CSR
   `SparseMatrixMatMul` and scipy's CSR product, at 90/95/99% sparsity.
   Every sparse product is checked against the dense one (max abs error).

XNNPack's sparse inference (1x1 convolutions of MobileNet-like models,
TFMOT's `PruneForLatencyOnXNNPack`) does not run here: XNNPack enables it
only on ARM and WebAssembly, not on x86 CPUs with AVX. The timed loops run
after two warm-up calls; each entry is the fastest of `--repeats` timings
(fewer for slow calls: about 3 s per entry).
"""

import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
from scipy import sparse as scipy_sparse  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from imagenet_resnet import mobilenet_model  # noqa: E402
from mnist import models as mnist_models  # noqa: E402
from rigl_tf import export  # noqa: E402
from rigl_tf import layers  # noqa: E402
from rigl_tf import masks  # noqa: E402

_TINY = flags.DEFINE_bool(
    'tiny', False, 'Small models and shapes, few repeats: checks that the '
    'benchmark runs (seconds), measures nothing meaningful.')
_THREADS = flags.DEFINE_integer('threads', 1, 'CPU threads of every runtime.')
_REPEATS = flags.DEFINE_integer('repeats', 0,
                                'Timed calls per entry (0: 50, tiny: 3).')


def fastest_seconds(fn, repeats, budget_s=3.0):
  """Fastest wall time of `fn()` after 2 warm-up calls.

  The minimum, not the mean: on a shared machine it is the timing least
  disturbed by other processes (as `timeit` recommends).
  Times `repeats` calls, or fewer (at least 5) when they would take longer
  than about `budget_s` seconds.
  """
  fn()
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  repeats = max(min(repeats, int(budget_s / max(first, 1e-9))), 5)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.min(times))


def _tflite_runner(content, batch, threads, delegate):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # tf.lite.Interpreter's LiteRT notice.
    interpreter = tf.lite.Interpreter(
        model_content=content, num_threads=threads,
        experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType.AUTO if delegate else
            tf.lite.experimental.OpResolverType
            .BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  source = interpreter.get_input_details()[0]
  shape = (batch,) + tuple(source['shape'][1:])
  interpreter.resize_tensor_input(source['index'], shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(source['index'],
                         np.random.RandomState(0).rand(*shape).astype(
                             np.float32))
  return interpreter.invoke


def _sparse_model(name, sparsity, tiny):
  """A model with random ERK masks applied (None sparsity: dense)."""
  keras.utils.set_random_seed(0)
  if name == 'lenet_300_100':
    model = mnist_models.lenet_300_100(input_shape=(28, 28, 1),
                                       num_classes=10)
    dense_layers = ()
  else:
    model = mobilenet_model.mobilenet_v1(
        num_classes=1000 if not tiny else 10,
        input_shape=(32, 32, 3) if tiny else (224, 224, 3),
        width=0.25 if tiny else 1.0)
    dense_layers = [layer.name for layer in model.layers
                    if isinstance(layer, keras.layers.DepthwiseConv2D)]
  model = layers.sparsify(model, dense_layers=dense_layers)
  masks.init_masks(model, masks.get_layer_sparsities(model, sparsity, 'erk'),
                   seed=0)
  for layer in layers.get_masked_layers(model):
    layer.apply_masks()
  return model


def exported_model_rows(tiny, threads, repeats):
  """Latency of dense vs sparse-encoded TFLite files of sparse models."""
  rows = []
  serving_batch = 4 if tiny else 16
  cases = [('lenet_300_100', 0.9), ('lenet_300_100', 0.98),
           ('mobilenet_v1', 0.9)]
  if tiny:
    cases = cases[:1]
  for name, sparsity in cases:
    model = _sparse_model(name, sparsity, tiny)
    with tempfile.TemporaryDirectory() as tmp:
      images = np.zeros((1,) + tuple(model.input_shape[1:]), np.float32)
      files = {f.name: f for f in export.export_model(model, tmp, images)}
      contents = {}
      for kind in ('dense', 'sparse'):
        with open(files[f'tflite_{kind}'].path, 'rb') as f:
          contents[kind] = f.read()
    for delegate in (True, False):
      for batch in (1, serving_batch):
        ms = {kind: 1e3 * fastest_seconds(
            _tflite_runner(contents[kind], batch, threads, delegate), repeats)
              for kind in ('dense', 'sparse')}
        rows.append(dict(
            model=name, sparsity=sparsity,
            dense_kb=len(contents['dense']) / 1e3,
            sparse_kb=len(contents['sparse']) / 1e3,
            runtime='XNNPack' if delegate else 'builtin',
            batch=batch, dense_ms=ms['dense'], sparse_ms=ms['sparse'],
            speedup=ms['dense'] / ms['sparse']))
  return rows


def _csr_matmul_fn(kernel_t):
  """x @ W with TF's CSR kernel: W^T stored as CSR, (W^T x^T)^T in one op.

  Runs eagerly: a CSR matrix captured by a tf.function loses the shape
  information the op needs.
  """
  where = tf.where(kernel_t != 0)
  csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
      indices=where, values=tf.gather_nd(kernel_t, where),
      dense_shape=tf.shape(kernel_t, out_type=tf.int64))
  return lambda x: tf.raw_ops.SparseMatrixMatMul(
      a=csr, b=x, transpose_b=True, transpose_output=True)


def kernel_rows(tiny, repeats):
  """Per-call time of dense and sparse matmul kernels at batch 1."""
  shapes = [('Dense 4096->4096', 1, 4096, 4096),
            ('1x1 conv 14x14x512->512', 196, 512, 512)]
  sparsities = (0.9, 0.95, 0.99)
  if tiny:
    shapes = [('Dense 256->256', 1, 256, 256), ('1x1 conv 4x4x64->64', 16,
                                                  64, 64)]
    sparsities = (0.95,)
  rng = np.random.RandomState(0)
  rows = []
  for layer, n_rows, c_in, c_out in shapes:
    x_np = rng.randn(n_rows, c_in).astype(np.float32)
    x = tf.constant(x_np)
    for sparsity in sparsities:
      kernel_np = rng.randn(c_in, c_out).astype(np.float32)
      kernel_np *= (rng.rand(c_in, c_out) >= sparsity)
      kernel = tf.constant(kernel_np)
      kernel_t = tf.constant(kernel_np.T)
      expected = x_np @ kernel_np
      coo = tf.sparse.from_dense(kernel_t)
      scipy_csr_t = scipy_sparse.csr_matrix(kernel_np.T)
      # Eager single ops (no tf.function): each pays the same ~10 us of
      # eager dispatch, and a CSR matrix cannot be captured by a tf.function.
      candidates = {
          'tf.matmul (dense)': lambda a, w=kernel: tf.matmul(a, w),
          'tf.sparse COO': lambda a, s=coo: tf.sparse.sparse_dense_matmul(
              s, a, adjoint_b=True),
          'tf CSR SparseMatrixMatMul': _csr_matmul_fn(kernel_t),
          'scipy CSR': lambda a, s=scipy_csr_t: s @ a.T,
      }
      dense_us = None
      for name, fn in candidates.items():
        arg = x_np if name.startswith('scipy') else x
        result = np.asarray(fn(arg))
        if name in ('tf.sparse COO', 'scipy CSR'):
          # They return y^T = W^T x^T (untimed transpose; a reshape at 1 row).
          result = result.T
        us = 1e6 * fastest_seconds(lambda f=fn, a=arg: np.asarray(f(a)),
                                  repeats)
        dense_us = dense_us or us
        rows.append(dict(
            layer=layer, sparsity=sparsity, kernel=name, us=us,
            speedup=dense_us / us,
            max_abs_err=float(np.abs(result - expected).max())))
  return rows


def format_tables(model_rows, kernel_rows_):
  """The two Markdown tables."""
  lines = ['| model | sparsity | TFLite KB dense | sparse | runtime | batch '
           '| dense ms | sparse ms | speed-up |', '|---|---:|---:|---:|---|'
           '---:|---:|---:|---:|']
  for r in model_rows:
    lines.append(
        f'| {r["model"]} | {r["sparsity"]:.2f} | {r["dense_kb"]:,.1f} | '
        f'{r["sparse_kb"]:,.1f} | {r["runtime"]} | {r["batch"]} | '
        f'{r["dense_ms"]:.4g} | {r["sparse_ms"]:.4g} | {r["speedup"]:.2f}x |')
  lines += ['', '| layer (batch 1) | sparsity | kernel | us per call | '
            'speed-up vs dense | max abs err |',
            '|---|---:|---|---:|---:|---:|']
  for r in kernel_rows_:
    lines.append(
        f'| {r["layer"]} | {r["sparsity"]:.2f} | {r["kernel"]} | '
        f'{r["us"]:,.1f} | {r["speedup"]:.2f}x | {r["max_abs_err"]:.1e} |')
  return '\n'.join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  tiny = _TINY.value
  repeats = _REPEATS.value or (3 if tiny else 30)
  tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
  model_rows = exported_model_rows(tiny, _THREADS.value, repeats)
  print(f'CPU, {_THREADS.value} thread(s), fastest of up to {repeats} calls')
  print(format_tables(model_rows, kernel_rows(tiny, repeats)))


if __name__ == '__main__':
  app.run(main)
