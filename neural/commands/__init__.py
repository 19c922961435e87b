"""The commands of ``python -m neural`` that work on map files: ``fit`` (a map from data)
and ``evaluate`` (a saved map against a ground truth and data). Each module adds its parser
(``add_parser``) and runs it (``run``)."""
