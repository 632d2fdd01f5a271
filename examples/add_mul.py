"""The lecture's first computational graph: f(x, y, z) = (x + y) * z at x=-2, y=5, z=-4.

Forward: q = x + y = 3, f = q * z = -12.
Backward: df/dz = q = 3, df/dq = z = -4, and the add gate distributes it: df/dx = df/dy = -4.
"""

import graphc as gc

x = gc.scalar("x")
y = gc.scalar("y")
z = gc.scalar("z")
q = x + y
f = q * z

example = gc.Example(outputs=[f], feeds={x: -2.0, y: 5.0, z: -4.0})
