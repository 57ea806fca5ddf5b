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
r"""Trains and evaluates sparse ResNets and MobileNets on ImageNet.

  python imagenet_resnet/train_eval.py \
      --gin_config=configs/imagenet_resnet/rigl_erk.gin \
      --data_dir=/data/tfds --output_dir=gs://bucket/resnet50_rigl_erk \
      --strategy=tpu --tpu=my-tpu
  python imagenet_resnet/train_eval.py --mode=eval_once \
      --gin_config=configs/imagenet_resnet/rigl_erk.gin \
      --data_dir=/data/tfds --output_dir=gs://bucket/resnet50_rigl_erk

ImageNet is read with tfds from a prepared copy (--data_dir) or prepared
once from the archives in --manual_dir; see "Preparing ImageNet" in the
README.

Models (bind `train_eval.model_fn`): @resnet (resnet.depth = 50 by default),
@mobilenet_v1, @mobilenet_v2 (width multipliers: mobilenet_v1.width, ...).
Input pipelines: `train_eval.preprocess_fn = @imagenet_train_preprocess`,
`train_eval.eval_preprocess_fn = @imagenet_eval_preprocess`.
"""

import os
import sys

# Run as a script from anywhere: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# First: quiets TensorFlow's import (see rigl_tf/script.py).
from rigl_tf import script  # noqa: E402

# isort: split
from imagenet_resnet import configurables  # noqa: E402,F401  (gin models, inputs)

if __name__ == '__main__':
  script.main(__doc__, models=('resnet', 'mobilenet_v1', 'mobilenet_v2'))
