"""The multiclass SVM (hinge) loss on one image's scores, as in the lecture's table:
scores (cat, chair, car) = (3.2, 5.1, -1.7) for an image of a cat.

L = max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1) = 2.9 + 0 = 2.9; the gradient is 1 on
chair (its margin is violated), 0 on car, and -1 on cat (once per violated margin).
"""

import numpy as np

import graphc as gc

scores = gc.input("scores", (1, 3))
labels = gc.input("labels", (1,), dtype="int64")
loss = gc.hinge(scores, labels)

example = gc.Example(outputs=[loss],
                     feeds={scores: np.array([[3.2, 5.1, -1.7]]), labels: np.array([0])})
