"""The model: building, training and persisting the scikit-learn pipelines mlnb registers.

- :mod:`mlnb.model.build`: the task, the estimator (by import path, supported ones only),
  the feature columns and the unfitted pipeline.
- :mod:`mlnb.model.features`: which features are numbers and which are categories.
- :mod:`mlnb.model.train`: the seeded split, the fit and the holdout scores.
- :mod:`mlnb.model.persist`: skops files with trusted types only, and loading a registered
  file after checking its sha256.

Metrics (their directions and the scores of a fitted model) are :mod:`mlnb.metrics`;
scoring tables with a model is :mod:`mlnb.predict`. None of these modules imports
scikit-learn, pandas or skops at import time.
"""
