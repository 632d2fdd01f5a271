"""The lecture's 2-D neuron: f(w, x) = 1 / (1 + exp(-(w0*x0 + w1*x1 + w2))).

At w0=2, x0=-1, w1=-3, x1=-2, w2=-3 the weighted sum is 1 and f = 0.73; the sigmoid gate's
local gradient s * (1 - s) = 0.2 flows back to give dw0 = -0.2, dx0 = 0.39, dw1 = -0.39,
dx1 = -0.59, dw2 = 0.2.
"""

import graphc as gc

w0, x0, w1, x1, w2 = (gc.scalar(n) for n in ("w0", "x0", "w1", "x1", "w2"))
dot = w0 * x0 + w1 * x1 + w2
f = 1 / (1 + gc.exp(-dot))

example = gc.Example(outputs=[f], feeds={w0: 2.0, x0: -1.0, w1: -3.0, x1: -2.0, w2: -3.0})
