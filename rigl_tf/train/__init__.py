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
"""The shared trainer of every task script (big_vision style).

* `config`: gin files and bindings, `RunConfig` (gin's `train_eval.*`);
* `cli`: the flags, `--help` and `run(argv)` of the task scripts;
* `build`: strategy, dataset information, model, masks, optimizer stack;
* `learning_rate`: the wrapped optimizer and its schedule;
* `loop`: the one training loop; `evaluate`; `checkpoints`; `output`;
  `report`;
* `trainer`: the training program of every method but Gem-Miner;
  `gem_miner_runner`: Gem-Miner's search then fine-tuning;
* `runners`: the table from method to program, and `train_eval`.

  rigl_tf.train.parse_gin(['configs/mnist/rigl.gin'], [])
  report = rigl_tf.train.train_eval(output_dir='/tmp/run')
"""

from rigl_tf.train.config import RunConfig
from rigl_tf.train.config import parse_gin
from rigl_tf.train.runners import train_eval
