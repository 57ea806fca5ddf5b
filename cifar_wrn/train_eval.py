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

# First: quiets TensorFlow's import (see rigl_tf/script.py).
from rigl_tf import script  # noqa: E402

# isort: split
from cifar_wrn import configurables  # noqa: E402,F401  (gin models, inputs)

if __name__ == '__main__':
  script.main(__doc__, models=('wrn_22_2', 'wrn_28_10', 'wide_resnet',
                               'resnet20', 'cifar_resnet'))
