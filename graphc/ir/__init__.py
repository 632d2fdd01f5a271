"""The intermediate representation: nodes, graphs, shapes with named dimensions."""

from graphc.ir.graph import consumers, leaves, topological_order
from graphc.ir.node import Node
from graphc.ir.shapes import Dim, Shape, broadcast_shapes, format_shape

__all__ = ["Node", "Dim", "Shape", "broadcast_shapes", "format_shape", "consumers", "leaves",
           "topological_order"]
