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
"""Test-session set-up shared by every test.

The physical CPU is split into two logical devices before TensorFlow runs any
op (afterwards "Virtual devices cannot be modified after being initialized"),
so that `MirroredStrategy` tests get two replicas on a CPU-only machine.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TFMOT needs Keras 2; set before anything imports TensorFlow's Keras.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from absl import flags  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# absl's TestCase (create_tempdir, ...) reads flags; pytest never parses them.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_itemcollected(item):
  """Keeps the tests of a class with a `setUpClass` in one xdist worker.

  Under pytest-xdist (`--dist loadgroup`, as run.sh runs the suite) tests go
  to the workers one by one, except those marked with one `xdist_group`:
  here the tests of a class whose `setUpClass` (e.g. a training run) they
  share.
  """
  cls = getattr(item, 'cls', None)
  if cls is not None and 'setUpClass' in vars(cls):
    item.add_marker(pytest.mark.xdist_group(
        f'{item.module.__name__}.{cls.__name__}'))


def pytest_collection_modifyitems(config, items):
  """Drops tf.test.TestCase.test_session, a helper pytest takes for a test.

  TensorFlow marks it "Not a test" by skipping it; deselecting keeps the
  skipped count about our own tests only.
  """
  kept = [item for item in items if item.name != 'test_session']
  deselected = [item for item in items if item.name == 'test_session']
  if deselected:
    config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def pytest_runtest_teardown(item, nextitem):
  """Clears gin's global configuration between test modules.

  A module that parses a config leaves its bindings behind (e.g. a config's
  `SNFS.end_step`); a later module that builds a method directly would get
  them. Within a module, tests manage gin themselves (some parse once, in
  setUpClass).
  """
  if nextitem is None or nextitem.module is not item.module:
    import gin  # pylint: disable=g-import-not-at-top
    gin.clear_config()


@pytest.fixture(autouse=True)
def _restore_log_levels():
  """Puts absl's verbosity and TensorFlow's logger level back after a test.

  A command line run in-process (`errors.cli_main`) lowers them before it
  exits on bad input; a later test in the same worker that expects a
  warning would then see none.
  """
  import logging as std_logging  # pylint: disable=g-import-not-at-top

  from absl import logging  # pylint: disable=g-import-not-at-top
  verbosity = logging.get_verbosity()
  tf_level = std_logging.getLogger('tensorflow').level
  yield
  logging.set_verbosity(verbosity)
  std_logging.getLogger('tensorflow').setLevel(tf_level)
