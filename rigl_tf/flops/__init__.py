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
"""MicroNet-style FLOP and size counting, as in the RigL paper.

* `counting`: the per-layer MicroNet rules (`layer_costs`, `summarize`,
  `with_densities`, `planned_densities`);
* `cost`: training FLOPs from a method's cost rule (`training_flops_ratio`)
  and the arithmetic the gradual methods' rules share;
* `report`: the per-layer table, `report_dict` and `count(model)`.

The names below are the package's API (`flops.count(model, sparsity=0.9)`).
The command line is `python -m rigl_tf.flops --help`.
"""

import sys

if sys.argv[:1] == ['-m']:
  # `python -m rigl_tf.flops` imports this package before its __main__:
  # hide TensorFlow's native start-up notices here (see quiet.py), so that
  # the command's output and errors are its own. Importers are not affected.
  from rigl_tf import quiet as _quiet
  with _quiet.native_stderr_silenced():
    import tensorflow as _tf
    _tf.config.list_physical_devices('GPU')

# The API (E402, F401: pyproject.toml).  pylint: disable=g-import-not-at-top
from rigl_tf.flops.cost import CostRule
from rigl_tf.flops.cost import TrainingCostInputs
from rigl_tf.flops.cost import gradual_density_schedule
from rigl_tf.flops.cost import gradual_schedule_flops
from rigl_tf.flops.cost import gradual_training_flops_per_step
from rigl_tf.flops.cost import search_then_finetune_flops_per_step
from rigl_tf.flops.cost import training_flops_ratio
from rigl_tf.flops.counting import BYTES_PER_MB
from rigl_tf.flops.counting import PADDING_RULES
from rigl_tf.flops.counting import PARAM_BITS
from rigl_tf.flops.counting import CostSummary
from rigl_tf.flops.counting import LayerCost
from rigl_tf.flops.counting import dense_costs
from rigl_tf.flops.counting import kernel_shapes
from rigl_tf.flops.counting import layer_costs
from rigl_tf.flops.counting import planned_densities
from rigl_tf.flops.counting import summarize
from rigl_tf.flops.counting import with_densities
from rigl_tf.flops.report import REPORT_KEYS
from rigl_tf.flops.report import FlopsCount
from rigl_tf.flops.report import count
from rigl_tf.flops.report import flops_table_text
from rigl_tf.flops.report import format_totals
from rigl_tf.flops.report import report_dict
from rigl_tf.flops.report import uncounted_weighted_layers
