"""The softmax cross-entropy loss on the same scores (cat, chair, car) = (3.2, 5.1, -1.7) for
an image of a cat: L = -log(exp(3.2) / (exp(3.2) + exp(5.1) + exp(-1.7))) = 2.04.

Its gradient with respect to the scores is p - y: the softmax probabilities (0.13, 0.87,
0.001) minus the one-hot label (1, 0, 0).
"""

import numpy as np

import graphc as gc

scores = gc.input("scores", (1, 3))
labels = gc.input("labels", (1,), dtype="int64")
loss = gc.softmax_cross_entropy(scores, labels)

example = gc.Example(outputs=[loss],
                     feeds={scores: np.array([[3.2, 5.1, -1.7]]), labels: np.array([0])})
