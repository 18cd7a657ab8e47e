"""Runs ``specgan <args>`` and SIGKILLs itself around the write of ``state.pt`` at one step.

    python tests/kill_worker.py {before,after} STEP specgan-args...

``before``: after model.safetensors was written for STEP, before state.pt (the commit point);
``after``: the moment state.pt for STEP has replaced the previous one. tests/test_skeleton.py
runs it to check that every such kill leaves a run that resumes to a model at the right step.
"""

import os
import signal
import sys

import vocoder.trainer as trainer
from specgan.cli import main

when, step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
save = trainer.save_training_state


def killing_save(state, path):
    if when == "before" and state["step"] == step:
        os.kill(os.getpid(), signal.SIGKILL)
    out = save(state, path)
    if when == "after" and state["step"] == step:
        os.kill(os.getpid(), signal.SIGKILL)
    return out


trainer.save_training_state = killing_save
sys.exit(main(argv))
