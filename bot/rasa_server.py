"""`python -m bot.rasa_server run ...`: Rasa's own command line (the same arguments as `rasa`),
with bot/rasa_patches.py applied first. The launcher starts the Rasa server through it.

TensorFlow runs each prediction (of a TensorFlow model such as DIET or TED, which the project's
pipeline no longer has: one message, a few milliseconds) on one thread unless the environment
says otherwise: splitting such small operations across threads costs more
than it saves, and on a busy machine the threads wait for each other (bench/profile.py: about a
tenth of the Rasa server's CPU per turn). Training (`rasa train`) keeps TensorFlow's defaults.

The same holds for numpy's BLAS (OpenBLAS): the intent classifier's products of a message's
vector with the model's coefficients and examples are small, and OpenBLAS's second thread, which
spins while it waits for work, doubled the Rasa server's CPU time per turn (bench/profile.py,
2026-12-04: 23 -> 44 ms a turn once the classifier used BLAS; the sentence encoder limits its
own BLAS threads to one already).
"""

from __future__ import annotations

import os

# read by Rasa when it sets TensorFlow up (rasa/utils/tensorflow/environment.py), and by the
# BLAS and OpenMP libraries numpy, scipy and scikit-learn load (before they are loaded)
SERVING_THREADS = {"TF_INTRA_OP_PARALLELISM_THREADS": "1", "TF_INTER_OP_PARALLELISM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def main() -> None:
    """Patch, then hand over to `rasa` with this process's arguments."""
    from bot import rasa_patches
    from bot.event_relay import endpoint_variables
    from bot.settings import get_settings

    for name, value in SERVING_THREADS.items():
        os.environ.setdefault(name, value)
    # endpoints.production.yml's event broker, from the settings unless the environment says
    for name, value in endpoint_variables(get_settings()).items():
        os.environ.setdefault(name, value)

    rasa_patches.apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
