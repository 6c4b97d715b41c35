"""`vertebra train vla --robot g1`: a small vision-language-action model for the G1, trained by the
repo's own reproducible pipeline, and its closed-loop tasks.

Modules
  tasks     the tabletop tasks: episodes, phrasings, the policy's inputs and outputs, `success()`
  randomise the training distribution: looks, colours, sizes; image augmentation
  expert    the scripted expert on the whole-body controller (`G1Session`, `expert_targets`)
  collect   demonstrations: the expert on random scenes, relabelled renders, worker processes
  model     the torch model (FiLM CNN + words + proprioception -> hand-target chunk) and training
  export    ONNX export and the policy package
  pipeline  `train_vla()`: collect -> train -> export

Pipeline
1. **Demonstrations.** A scripted expert drives the whole-body controller's hand targets along
   minimum-jerk paths to each task's goal (over the solid table from above its plane), on scenes
   drawn from the randomised training distribution (`randomise`), some with the named object absent. Every other 10 Hz step it records the
   head camera (96x96), the instruction, the arm joints' q and dq, and the next 10 hand-position
   targets (the targets of that step and the 9 after it). Touch/point frames are rendered once
   more in a relabelled scene (`relabel()`): same target place and motion, other colours, shapes
   and distractors, and the instruction to match.
2. **Training.** The model is trained in torch on CPU (see `model`).
3. **Export.** The model goes to ONNX, with its ``policy.yaml``.

torch is imported only by training and export, so evaluation and the policy server never load it.
`collect` and `export` here are the modules; their functions are `collect.collect` and
`export.export`.
"""

from vertebra.policies.vla import collect, export, randomise
from vertebra.policies.vla.collect import (
    ABSENT_S,
    COLLECT_TABLE,
    EXEC_NOISE_M,
    KINDS,
    NOISE_KEEP,
    OBS_EVERY,
    SCENE_VARIANTS,
    TASK_WEIGHTS,
    collect_parallel,
    draw_episode,
)
from vertebra.policies.vla.expert import (
    MOVE_S,
    TABLE_MODES,
    WAVE_AMP_M,
    WAVE_HZ,
    G1Session,
    HandShape,
    expert_targets,
    goal,
    min_jerk,
    shoulders,
)
from vertebra.policies.vla.model import AUX_WEIGHT, FEASIBLE_WEIGHT, PROPRIO_DROP, PROPRIO_NOISE, WORD_DROPOUT, build_model, train
from vertebra.policies.vla.pipeline import train_vla
from vertebra.policies.vla.tasks import (
    ARM_WORDS,
    CHUNK,
    CROSS_REACH_Y_M,
    EPISODE_S,
    IMAGE,
    POINT_REACH_M,
    POINT_TOL_DEG,
    RAISED_Z_M,
    RATE_HZ,
    RESET_S,
    TASKS,
    TOKENS,
    TOUCH_TOL_M,
    TRAIN_PHRASINGS,
    VOCAB,
    WAVE_SWEEP_M,
    WAVE_Z_M,
    Episode,
    arm_joints,
    make_absent,
    measures,
    phrase,
    relabel,
    sample_episode,
    success,
)

__all__ = [
    "ABSENT_S", "ARM_WORDS", "AUX_WEIGHT", "CHUNK", "COLLECT_TABLE", "CROSS_REACH_Y_M", "EPISODE_S", "EXEC_NOISE_M", "FEASIBLE_WEIGHT",
    "IMAGE", "KINDS", "MOVE_S", "NOISE_KEEP", "OBS_EVERY", "POINT_REACH_M", "POINT_TOL_DEG", "PROPRIO_DROP",
    "PROPRIO_NOISE", "RAISED_Z_M", "RATE_HZ", "RESET_S", "SCENE_VARIANTS", "TABLE_MODES", "TASKS", "TASK_WEIGHTS",
    "TOKENS", "TOUCH_TOL_M", "TRAIN_PHRASINGS", "VOCAB", "WAVE_AMP_M", "WAVE_HZ", "WAVE_SWEEP_M", "WAVE_Z_M",
    "WORD_DROPOUT", "Episode", "G1Session", "HandShape", "arm_joints", "build_model", "collect", "collect_parallel",
    "draw_episode", "expert_targets", "export", "goal", "make_absent", "measures", "min_jerk", "phrase", "randomise",
    "relabel", "sample_episode", "shoulders", "success", "train", "train_vla",
]
