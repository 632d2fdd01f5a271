"""The patterns of backprop on the slides: f = 2 * (x*y + max(z, w)) at x=3, y=-4, z=2, w=-1.

The add gate distributes the gradient (2 to both of its inputs), the max gate routes it to
the larger input (dz = 2, dw = 0), and the mul gate swaps its inputs (dx = 2*y = -8,
dy = 2*x = 6).
"""

import graphc as gc

x, y, z, w = (gc.scalar(n) for n in ("x", "y", "z", "w"))
f = 2 * (x * y + gc.maximum(z, w))

example = gc.Example(outputs=[f], feeds={x: 3.0, y: -4.0, z: 2.0, w: -1.0})
