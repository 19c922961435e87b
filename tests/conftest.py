"""Test-session settings: single-threaded BLAS (small matrices thrash on a 2-core machine)."""

import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
