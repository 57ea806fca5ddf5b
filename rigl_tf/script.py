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
"""The shared start of the task scripts (<task>/train_eval.py).

Importing this module sets TensorFlow's environment defaults (quiet C++
logs, legacy tf_keras) and imports TensorFlow with its native start-up
notices hidden (see quiet.py), so a script imports it before anything that
imports TensorFlow, right after putting the repository root on sys.path:

  sys.path.insert(0, os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  from rigl_tf import script
  from mnist import models  # Registers the task's gin models.

  if __name__ == '__main__':
    script.main(__doc__, models=('lenet_300_100', 'lenet5'))
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from rigl_tf import quiet  # noqa: E402  (imports no TensorFlow)

with quiet.native_stderr_silenced():
  import tensorflow as tf
  # Probe CUDA now (absl init callbacks of TensorFlow would, loudly). Only
  # physical devices: the runtime stays uninitialised for multi-worker.
  tf.config.list_physical_devices('GPU')

from absl import app  # noqa: E402

from rigl_tf.train import cli  # noqa: E402


def main(script_doc, models):
  """Defines the shared flags and runs `train.cli.run` under absl.

  Args:
    script_doc: the script's module docstring (the head of its --help).
    models: names of the task's gin model builders, listed by --help.
  """
  cli.define_flags()
  app.run(cli.run, flags_parser=cli.flags_parser(script_doc, models=models))
