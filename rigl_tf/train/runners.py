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
"""Which program runs a method, and `train_eval`, the run of a script.

Every method trains with the shared program (`trainer.train`), except
Gem-Miner, whose search-then-fine-tune program is its own
(`gem_miner_runner`); both run on the shared loop, checkpoints, evaluation
and reports. `RUNNERS` is the table from method name to program;
`model_for_checkpoints` builds the model a finished run's checkpoints hold
(for export and pictures).
"""

import dataclasses
from typing import Callable

from rigl_tf.errors import UserError
from rigl_tf.methods import registry
from rigl_tf.train import build
from rigl_tf.train import checkpoints
from rigl_tf.train import config as config_lib
from rigl_tf.train import evaluate
from rigl_tf.train import gem_miner_runner
from rigl_tf.train import trainer


@dataclasses.dataclass(frozen=True)
class Runner:
  """A method's program.

  Attributes:
    check: fn(config) raising `UserError` for a mode or setting the program
      cannot honour.
    run: fn(config) -> report, for every mode the program supports.
    model_for_checkpoints: fn(config, strategy, info) -> (model, checkpoint
      directory): the model a finished run's checkpoints restore into.
  """
  check: Callable
  run: Callable
  model_for_checkpoints: Callable


def _run_standard(config):
  """The modes of the shared program: train, evaluate once, follow."""
  if config.mode == 'eval_once':
    ckpt_path = checkpoints.resolve_for_eval(config.eval_once_ckpt,
                                             config.output_dir)
    return evaluate.eval_once(build.set_up(config), ckpt_path)
  run = build.set_up(config)
  if config.mode == 'eval':
    return evaluate.continuous_eval(run)
  return trainer.train(run)


def _standard_model(config, strategy, info):
  with strategy.scope():
    sparse = build.make_updater(config).sparse
    model = build.build_model(config, info, sparse)
  return model, config.output_dir


def _run_gem_miner(config):
  strategy, info = build.strategy_and_info(config)
  try:
    if config.mode == 'eval_once':
      return gem_miner_runner.eval_once(config, strategy, info)
    return gem_miner_runner.run(config, strategy, info)
  except ValueError as e:  # A bad GemMiner value, or a run it cannot do.
    raise UserError(str(e)) from e


def _gem_model(config, strategy, info):
  model, _, directory = gem_miner_runner.gem_structure(config, strategy, info)
  return model, directory


STANDARD = Runner(check=lambda config: None, run=_run_standard,
                  model_for_checkpoints=_standard_model)
RUNNERS = {
    'gem_miner': Runner(check=gem_miner_runner.check_config,
                        run=_run_gem_miner,
                        model_for_checkpoints=_gem_model),
}


def runner_for(method):
  """The `Runner` of a method (by any name `registry.get_class` takes)."""
  return RUNNERS.get(registry.get_class(method).method_name, STANDARD)


def train_eval(**kwargs):
  """Trains and/or evaluates a (sparse) model: the whole run of a script.

  Args:
    **kwargs: fields of `config.RunConfig` (gin supplies the others).

  Returns:
    The report dict (also written to output_dir/report.json by training).

  Raises:
    UserError: on bad input, a missing checkpoint or dataset, a NaN loss.
  """
  config = config_lib.resolve(config_lib.RunConfig(**kwargs))
  runner = runner_for(config.method)
  runner.check(config)
  return runner.run(config)
