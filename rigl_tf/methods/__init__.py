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
"""Sparse training methods: one class each, registered by name.

  updater = methods.create('rigl')      # gin fills its hyperparameters
  methods.names()                       # ['dense', 'gem_miner', ..., 'static']

The package imports every method module, so that each registers itself:

* `base`: `MaskUpdater`, the base class, and the constructors' checks;
* `static`: `static` (fixed random masks) and `dense`;
* `drop_grow`: the one drop/grow engine, `DropGrowUpdater`;
* `dst`: `set`, `snfs` and `rigl`, the engine with three grow scores;
* `gradual`: `gmp` and the gradual-pruning base; `granet`; `tfmot_gmp`;
* `snip`; `gem_miner` (with its scored layers, `scored`).
"""

# pylint: disable=g-bad-import-order
from rigl_tf.methods import dst
from rigl_tf.methods import gem_miner
from rigl_tf.methods import gradual
from rigl_tf.methods import granet
from rigl_tf.methods import registry
from rigl_tf.methods import snip
from rigl_tf.methods import static
from rigl_tf.methods import tfmot_gmp
from rigl_tf.methods.base import MaskUpdater
from rigl_tf.methods.drop_grow import DropGrowUpdater
from rigl_tf.methods.dst import SET
from rigl_tf.methods.dst import SNFS
from rigl_tf.methods.dst import RigL
from rigl_tf.methods.gem_miner import GemMiner
from rigl_tf.methods.gradual import GMP
from rigl_tf.methods.granet import GraNet
from rigl_tf.methods.registry import create
from rigl_tf.methods.registry import get_class
from rigl_tf.methods.registry import names
from rigl_tf.methods.registry import register
from rigl_tf.methods.snip import SNIP
from rigl_tf.methods.static import DenseTraining
from rigl_tf.methods.static import Static
from rigl_tf.methods.tfmot_gmp import TFMOTGMP
