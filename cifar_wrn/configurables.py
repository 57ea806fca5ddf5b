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
"""Registers the CIFAR models and input pipelines with gin.

Models: @wrn_22_2, @wrn_28_10, @wide_resnet (bind wide_resnet.depth and
wide_resnet.width), @resnet20, @cifar_resnet (bind cifar_resnet.depth;
50 is GraNet's CIFAR ResNet-50). Pipelines: @cifar_train_preprocess,
@cifar_eval_preprocess.
"""

import gin

from cifar_wrn import input_pipeline  # noqa: F401  (registers the pipelines)
from cifar_wrn import wrn_model

for _fn in (wrn_model.wide_resnet, wrn_model.wrn_22_2, wrn_model.wrn_28_10,
            wrn_model.resnet20, wrn_model.cifar_resnet):
  gin.external_configurable(_fn, module='cifar_wrn')
