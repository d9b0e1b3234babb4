"""Training the span reader: data, the training loop, calibration and its command (`python -m qa.training`).

Nothing in the answering path imports this package; it needs the `train` extra.
"""
