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
r"""Trains and evaluates sparse Wide ResNets / ResNet-20 on CIFAR-10/100.

  python cifar_wrn/train_eval.py --gin_config=configs/cifar_wrn/rigl_erk.gin \
      --output_dir=/tmp/wrn_rigl_erk
  python cifar_wrn/train_eval.py --mode=eval_once \
      --gin_config=configs/cifar_wrn/rigl_erk.gin \
      --output_dir=/tmp/wrn_rigl_erk

Models (bind `train_eval.model_fn`): @wrn_22_2, @wrn_28_10, @wide_resnet
(bind wide_resnet.depth/width), @resnet20. Input pipelines:
`train_eval.preprocess_fn = @cifar_train_preprocess`,
`train_eval.eval_preprocess_fn = @cifar_eval_preprocess`.
"""

import os
import sys

# Run as a script from anywhere: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from rigl_tf import quiet  # noqa: E402  (imports no TensorFlow)

with quiet.native_stderr_silenced():
  import tensorflow as tf
  # Probe CUDA now (absl init callbacks of TensorFlow would, loudly). Only
  # physical devices: the runtime stays uninitialised for multi-worker.
  tf.config.list_physical_devices('GPU')

from absl import app  # noqa: E402

from cifar_wrn import configurables  # noqa: E402,F401  (gin models, inputs)
from rigl_tf import train_lib  # noqa: E402

train_lib.define_flags()

if __name__ == '__main__':
  app.run(train_lib.run, flags_parser=train_lib.flags_parser(
      __doc__, models=('wrn_22_2', 'wrn_28_10', 'wide_resnet', 'resnet20',
                       'cifar_resnet')))
