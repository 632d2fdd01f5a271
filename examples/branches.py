"""Gradients add at branches: f = (x + y) * x at x=3, y=-1.

x is read twice, so its gradient is the sum of the two branches: df/dx = (x + y) + x = 2 + 3 = 5
(the figure writes it as "5 = 3 + 2"), while df/dy = x = 3.
"""

import graphc as gc

x = gc.scalar("x")
y = gc.scalar("y")
q = x + y
f = q * x

example = gc.Example(outputs=[f], feeds={x: 3.0, y: -1.0})
