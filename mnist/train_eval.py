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
r"""Trains and evaluates sparse LeNets on MNIST or the offline digits data.

  python mnist/train_eval.py --gin_config=configs/mnist/static_erk.gin \
      --output_dir=/tmp/mnist_static_erk
  python mnist/train_eval.py --mode=eval_once \
      --output_dir=/tmp/mnist_static_erk \
      --gin_config=configs/mnist/static_erk.gin

Models (bind `train_eval.model_fn`): @lenet_300_100, @lenet5, @vit.
"""

import os
import sys

# Run as a script from anywhere: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# First: quiets TensorFlow's import (see rigl_tf/script.py).
from rigl_tf import script  # noqa: E402

# isort: split
from mnist import models  # noqa: E402,F401  (registers the gin models)

if __name__ == '__main__':
  script.main(__doc__, models=('lenet_300_100', 'lenet5', 'vit'))
