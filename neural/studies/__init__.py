"""The paper's studies of the neural solver, each against a reference.

- ``sweep``        the Fig. 2 seed sweep (§3.4.2): the four methods on the paper's mixture,
                   MMD (eq. 1.10) over seeds, resumable and parallel (a sub-package);
- ``dimensions``   every method on Gaussian → Gaussian pairs in several dimensions, against
                   the closed-form OT map;
- ``flowcheck``    the neural schemes (Algorithm 2) step by step against the reference
                   implicit scheme (3.2), exact (Gaussians) or on a grid (the mixture);
- ``errorbudget``  Remark 3.11's three causes of error, measured against exact maps.

Each runs from the command line: ``python -m neural benchmark|dimensions|flowcheck|errorbudget``.
"""
