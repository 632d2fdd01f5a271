"""A small convolutional network on the handwritten digits (1x8x8 images, 10 classes):
two 3x3 convolutions with ReLU and 2x2 max pooling, dropout on the 64 pooled features, a fully
connected layer, softmax cross-entropy and Adam. `graphc train examples/cnn_digits.py`
reaches about 98.5-99.5% test accuracy in some 10 seconds on two cores."""

import graphc as gc
from graphc.data import load_digits

x = gc.input("x", ("batch", 1, 8, 8))
labels = gc.input("labels", ("batch",), dtype="int64")
K1 = gc.param("K1", (8, 1, 3, 3), init="he", seed=1)
c1 = gc.param("c1", (8,), init="zeros")
K2 = gc.param("K2", (16, 8, 3, 3), init="he", seed=2)
c2 = gc.param("c2", (16,), init="zeros")
W = gc.param("W", (16 * 2 * 2, 10), init="glorot", seed=3)
b = gc.param("b", (10,), init="zeros")

conv1 = gc.relu(gc.conv2d(x, K1, c1, padding=1))        # (batch, 8, 8, 8)
pool1 = gc.max_pool2d(conv1, 2)                         # (batch, 8, 4, 4)
conv2 = gc.relu(gc.conv2d(pool1, K2, c2, padding=1))    # (batch, 16, 4, 4)
pool2 = gc.max_pool2d(conv2, 2)                         # (batch, 16, 2, 2)
features = gc.dropout(gc.flatten(pool2), 0.25, seed=0)  # only in training steps
scores = features @ W + b
loss = gc.softmax_cross_entropy(scores, labels)

example = gc.Example(
    outputs=[loss],
    inputs=[x, labels],
    scores=scores,
    optimizer=gc.Adam(lr=0.003),
    dataset=lambda: load_digits(images=True),
    epochs=40,
    batch_size=32,
)
