"""Logistic regression on the digits 0 and 1: one score z = w.x + b, trained as the lecture's
2-class softmax with scores (z, -z), which is exactly the sigmoid of 2z. SGD.
`graphc train examples/logistic_regression.py` reaches about 100% test accuracy."""

import graphc as gc
from graphc.data import Dataset, load_digits


def zeros_and_ones() -> Dataset:
    """The 360 digits that are 0 or 1, labelled 0 and 1."""
    digits = load_digits()
    keep = digits.y < 2
    return Dataset(digits.x[keep], digits.y[keep], num_classes=2, name="digits 0 and 1")


x = gc.input("x", ("batch", 64))
labels = gc.input("labels", ("batch",), dtype="int64")
w = gc.param("w", (64, 1), init="zeros")
b = gc.param("b", (1,), init="zeros")

z = x @ w + b
scores = gc.concatenate([z, -z], axis=1)
loss = gc.softmax_cross_entropy(scores, labels)

example = gc.Example(
    outputs=[loss],
    inputs=[x, labels],
    scores=scores,
    optimizer=gc.SGD(lr=0.1),
    dataset=zeros_and_ones,
    epochs=10,
    batch_size=16,
)
