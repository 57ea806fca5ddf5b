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
"""tfds input pipelines for training and evaluation.

Datasets come from `tensorflow_datasets`. `digits` is built offline from
scikit-learn's bundled copy; `mnist`/`cifar10`/`cifar100` download on first
use where there is a network; `imagenet2012` reads `manual_dir`. When a
dataset cannot be had, `DatasetUnavailableError` says which, where it looked
and what to pass instead.
"""

import contextlib
import dataclasses
import inspect
import socket
from typing import Callable, Optional
import urllib.parse

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds

from rigl_tf import datasets as _builders  # noqa: F401  (registers digits)

# Datasets that can be built without a network.
OFFLINE_DATASETS = ('digits',)
# The datasets the task scripts are written for (any tfds image
# classification dataset works the same way).
DATASETS = ('digits', 'mnist', 'cifar10', 'cifar100', 'imagenet2012')
# Examples held by the training shuffle buffer. A checkpointed input
# pipeline stores this buffer: 10k MNIST images are 7.8 MB, CIFAR 31 MB.
SHUFFLE_BUFFER = 10_000
# Up to this many training examples the input position is checkpointed and a
# resumed run continues the exact data order; larger datasets (ImageNet,
# whose buffer would hold gigabytes) reshuffle on resume instead.
MAX_EXAMPLES_TO_CHECKPOINT_INPUT = 200_000


def checkpoint_input_position(info):
  """Whether to save the input pipeline's position with the model."""
  return (info.num_train_examples or 0) <= MAX_EXAMPLES_TO_CHECKPOINT_INPUT


class DatasetUnavailableError(Exception):
  """The dataset is neither prepared nor preparable here."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model needs to know about a dataset."""
  name: str
  input_shape: tuple
  num_classes: int
  num_train_examples: Optional[int]  # None: unknown (mocked data).
  num_eval_examples: Optional[int]
  eval_split: str


def scale_image(image, label):
  """uint8 image -> float32 in [0, 1]."""
  return tf.cast(image, tf.float32) / 255.0, label


def _eval_split(builder):
  splits = builder.info.splits
  return 'validation' if splits and 'test' not in splits else 'test'


def _num_examples(builder, split):
  """Examples in `split`, or None where tfds has no split metadata (mocks)."""
  splits = builder.info.splits
  return splits[split].num_examples if split in splits else None


def _imagenet_missing(name, builder, manual_dir, error):
  """The error for an ImageNet that is neither prepared nor preparable."""
  where = manual_dir or f'{builder.data_dir_root}/downloads/manual'
  return DatasetUnavailableError(
      f'{name} is not prepared in {builder.data_dir} and its archives are '
      f'not in {where} ({type(error).__name__}): download '
      'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from '
      'image-net.org into a directory and pass it as --manual_dir (tfds '
      'prepares it once), or pass --data_dir of a prepared copy; see '
      '"Preparing ImageNet" in the README.')


@contextlib.contextmanager
def _absl_warnings_hidden():
  """Hides absl warnings (tfds's notes about unprepared folders)."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


class NoNetworkError(OSError):
  """None of a dataset's download hosts answers."""


def _check_reachable(builder, timeout=3.0):
  """Raises `NoNetworkError` when no download host of `builder` answers.

  tfds retries each download for minutes; one connection attempt per host
  tells in seconds that a machine is offline. A builder whose
  `download_and_prepare` is not tfds's own downloads nothing (e.g. under
  `tfds.testing.mock_data`): no check.
  """
  prepare = type(builder).download_and_prepare
  if not prepare.__module__.startswith('tensorflow_datasets.core'):
    return
  hosts = sorted({urllib.parse.urlparse(url).hostname
                  for url in (getattr(builder, 'url_infos', None) or {})}
                 - {None})
  for host in hosts:
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
      return
    except OSError:
      continue
  if hosts:
    raise NoNetworkError(f'no network: cannot reach {", ".join(hosts)}')


def get_builder(name, data_dir=None, manual_dir=None):
  """A prepared tfds builder for `name` (prepared now if possible).

  Args:
    name: tfds name.
    data_dir: tfds data directory (None: the tfds default).
    manual_dir: where manually downloaded archives are (ImageNet); None:
      tfds's default, <data_dir>/downloads/manual.

  Raises:
    DatasetUnavailableError: unknown name, or not prepared and preparing
      failed (no network, no manual_dir).
  """
  try:
    with _absl_warnings_hidden():  # "Variant folder ... has no ..." notes.
      builder = tfds.builder(name, data_dir=data_dir)
      prepared = builder.is_prepared()
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DatasetUnavailableError(
        f'Unknown dataset {name!r}: not a tensorflow_datasets name (offline '
        f'choice: {", ".join(OFFLINE_DATASETS)}).') from e
  if not prepared:
    try:
      _check_reachable(builder)
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as e:  # pylint: disable=broad-except
      if name.startswith('imagenet2012'):
        raise _imagenet_missing(name, builder, manual_dir, e) from e
      raise DatasetUnavailableError(
          f'Dataset {name!r} is not prepared in {builder.data_dir} and could '
          f'not be downloaded/prepared ({_why(e)}). '
          'Pass --data_dir pointing to a prepared tfds copy (ImageNet: put '
          'the archives in <data_dir>/downloads/manual), or use '
          '--gin_bindings="train_eval.dataset=\'digits\'" to run offline.'
      ) from e
  return builder


def _why(error):
  if isinstance(error, NoNetworkError):
    return str(error)
  return type(error).__name__


def get_info(name, data_dir=None, manual_dir=None):
  """The `DatasetInfo` of a dataset (prepares it if needed)."""
  builder = get_builder(name, data_dir, manual_dir)
  eval_split = _eval_split(builder)
  features = builder.info.features
  return DatasetInfo(
      name=name,
      input_shape=tuple(features['image'].shape),
      num_classes=features['label'].num_classes,
      num_train_examples=_num_examples(builder, 'train'),
      num_eval_examples=_num_examples(builder, eval_split),
      eval_split=eval_split)


def get_dataset(name: str,
                split: str,
                batch_size: int,
                training: bool,
                data_dir: Optional[str] = None,
                preprocess_fn: Optional[Callable] = None,
                seed: int = 0,
                manual_dir: Optional[str] = None) -> tf.data.Dataset:
  """A batched (image, label) dataset.

  Training datasets are shuffled with a fixed seed, repeated forever and
  batched with `drop_remainder=True`, so the sequence of global batches is
  the same whatever the number of replicas. Evaluation datasets are read
  once, in order, with the last partial batch kept.

  A `preprocess_fn` with a `seed` argument gets, for training, a distinct
  stateless seed per example, (seed, example index): random augmentation
  is then the same for a seed whatever the parallelism, and a checkpointed
  iterator resumes it exactly.

  Args:
    name: tfds name ('digits', 'mnist', 'cifar10', ...).
    split: 'train', 'test', 'eval' (the dataset's test or validation split).
    batch_size: global batch size.
    training: shuffle, repeat and drop the remainder.
    data_dir: tfds data directory (None: the tfds default).
    preprocess_fn: (image, label) -> (image, label), or
      (image, label, seed=) -> (image, label) for random augmentation;
      default scales to [0, 1].
    seed: shuffle and augmentation seed.
    manual_dir: see `get_builder`.

  Returns:
    A `tf.data.Dataset`.
  """
  builder = get_builder(name, data_dir, manual_dir)
  if split == 'eval':
    split = _eval_split(builder)
  read_config = tfds.ReadConfig(shuffle_seed=seed)
  ds = builder.as_dataset(
      split=split, as_supervised=True, shuffle_files=training,
      read_config=read_config)
  options = tf.data.Options()
  options.deterministic = True
  # Each worker reads the data and keeps its part of every global batch;
  # works whatever the number of files.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  ds = ds.with_options(options)
  if training:
    # No cache(): a checkpointed iterator would store the whole cache.
    num_examples = _num_examples(builder, split) or SHUFFLE_BUFFER
    ds = ds.shuffle(min(num_examples, SHUFFLE_BUFFER), seed=seed,
                    reshuffle_each_iteration=True)
    ds = ds.repeat()
  if preprocess_fn is None:
    # scale_image is elementwise: applied to whole batches it gives the same
    # values for a fraction of the cost (a map per small example can cost
    # more than a small model's training step).
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.map(scale_image, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
  if training and _takes_seed(preprocess_fn):
    base = tf.constant(seed, tf.int64)
    ds = ds.enumerate().map(
        lambda index, example: preprocess_fn(
            *example, seed=tf.stack([base, index])),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  else:
    ds = ds.map(preprocess_fn, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=training)
  return ds.prefetch(tf.data.AUTOTUNE)


def _takes_seed(fn):
  """Whether `fn` accepts a `seed` argument (random augmentation)."""
  try:
    return 'seed' in inspect.signature(fn).parameters
  except (TypeError, ValueError):  # Builtins without a signature.
    return False
