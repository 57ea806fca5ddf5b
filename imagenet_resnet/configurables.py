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
"""Registers the ImageNet models and input pipelines with gin.

Models: @resnet (bind resnet.depth: 18, 34, 50, 101, 152; resnet.width),
@mobilenet_v1 and @mobilenet_v2 (bind mobilenet_v1.width /
mobilenet_v2.width, RigL's width multipliers). Pipelines:
@imagenet_train_preprocess, @imagenet_eval_preprocess.
"""

import gin

from imagenet_resnet import input_pipeline  # noqa: F401  (pipelines)
from imagenet_resnet import mobilenet_model
from imagenet_resnet import resnet_model

for _fn in (resnet_model.resnet, mobilenet_model.mobilenet_v1,
            mobilenet_model.mobilenet_v2):
  gin.external_configurable(_fn, module='imagenet_resnet')
