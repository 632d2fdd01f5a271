"""``python -m graphc.render.gallery``: redraw docs/gallery.md and docs/gallery/*.svg, every
example in examples/ at every stage (and, where it has feeds, step by step), each figure
shown under the code that made it.

Run it from the repository root after adding or changing an example.
"""

from __future__ import annotations

import argparse
import ast
import os
from collections.abc import Sequence
from typing import TypedDict

from graphc.example import Example, load_example
from graphc.ir.graph import topological_order
from graphc.render.collapse import Collapse
from graphc.render.draw import render
from graphc.render.stages import STAGES
from graphc.render.steps import render_steps

INTRO = """\
# Gallery

Every example in `examples/`, drawn by `graphc.render`. Regenerate this page and its
figures with `python -m graphc.render.gallery` (from the repository root).

How to read a figure: inputs are blue rounded boxes, parameters amber boxes, constants
dashed boxes, outputs double-bordered purple boxes; ops are circles (in a graph of
numbers) or rounded boxes with their shape. Each arrow from u to its consumer carries u's
value in green above and the gradient of the output with respect to u in red below. A
dot where a value fans out marks the branch: the arrow into it carries the gradient as the
sum of the branches. In the autodiff stage the nodes `gc.grad` builds are red; in the
optimized stage a fused node is labelled with its expression. Numbers are written as on the
slides (two decimals: 0.73, -0.20, 1.37); an op assigned to a variable (`q = x + y`) is
named on its arrows.

The snippets below start from

```python
from graphc.example import load_example
from graphc.render import render, render_steps
```
"""

STAGE_TEXT = {
    "source": "The graph as declared",
    "autodiff": "Forward and backward graph together (autodiff's nodes in red)",
    "optimized": "After the optimizing passes (`optimize=2`)",
}


class _Shape(TypedDict, total=False):
    """The arguments of ``render`` that shape a network's figure."""

    collapse: Collapse
    rankdir: str


#: The viewer's section, after the examples: its screenshots are taken in a browser
#: (tests/test_viewer.py can write them), so this page only links them.
VIEWER = """
## The backprop viewer

Every example above also opens in the viewer, one offline HTML page that steps through the
forward and the backward pass with the generated code beside the graph
([docs/viewer.md](viewer.md)):

```bash
graphc view examples/sigmoid_neuron.py -o sigmoid.html
```

![the viewer at backward step 6 of the sigmoid neuron, 1280x720](gallery/viewer-sigmoid_neuron.png)

In presentation mode (F), at the last step:

![the viewer in presentation mode at the last step](gallery/viewer-sigmoid_neuron-present.png)
"""


def build(examples: str = "examples", docs: str = "docs") -> list[str]:
    """Draw every example into ``docs``/gallery and write ``docs``/gallery.md; returns the
    paths of the figures written."""
    folder = os.path.join(docs, "gallery")
    os.makedirs(folder, exist_ok=True)
    sections, written = [], []
    for name in sorted(os.listdir(examples)):
        if name.endswith(".py") and not name.startswith("_"):
            path = os.path.join(examples, name)
            text, files = _section(path, load_example(path), folder, docs)
            sections.append(text)
            written += files
    for stale in set(os.listdir(folder)) - {os.path.basename(f) for f in written}:
        if stale.endswith(".svg"):
            os.remove(os.path.join(folder, stale))
    with open(os.path.join(docs, "gallery.md"), "w", encoding="utf-8") as f:
        f.write(INTRO + "".join(sections) + VIEWER)
    return written


def _section(path: str, example: Example, folder: str, docs: str) -> tuple[str, list[str]]:
    stem = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    summary = (ast.get_docstring(ast.parse(source)) or stem).split("\n\n")[0]
    feeds = example.feeds or None
    parts = [f"\n## {stem}\n\n{' '.join(summary.split())}\n\n`{path}`:\n\n```python\n"
             f"{source.rstrip()}\n```\n"]
    if feeds is None:
        parts.append("\nThe example gives no feeds, so its figures show shapes, not values.\n")
    network = any(n.op.name == "param" for n in topological_order(example.outputs))
    if network:
        parts.append("\nA network, drawn as `graphc render` draws one: each layer one box, in "
                     "the direction that keeps the figure within 3:1.\n")
    shape: _Shape = {"collapse": "layers", "rankdir": "auto"} if network else {}
    shape_args = "".join(f", {k}=\"{v}\"" for k, v in shape.items())
    files = []
    for stage in STAGES:
        figure = os.path.join(folder, f"{stem}-{stage}.svg")
        render(example.outputs, feeds, path=figure, stage=stage, **shape)
        files.append(figure)
        feeds_arg = "example.feeds" if feeds is not None else "None"
        parts.append(f"\n### {STAGE_TEXT[stage]}\n\n```python\nexample = load_example("
                     f"\"{path}\")\nrender(example.outputs, {feeds_arg}, "
                     f"path=\"{figure}\", stage=\"{stage}\"{shape_args})\n```\n\n"
                     f"![{stem}, {stage}]({os.path.relpath(figure, docs)})\n")
    if feeds is not None:
        frames = render_steps(example.outputs, feeds, os.path.join(folder, f"{stem}-step"))
        files += frames
        parts.append(f"\n### Backpropagation step by step\n\n```python\nrender_steps("
                     f"example.outputs, example.feeds, \"{folder}/{stem}-step\")\n```\n\n")
        parts += [f"![{stem}, step {k}]({os.path.relpath(frame, docs)})\n\n"
                  for k, frame in enumerate(frames, 1)]
    return "".join(parts), files


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``--examples`` and ``--docs`` folders, relative to the current one."""
    parser = argparse.ArgumentParser(prog="python -m graphc.render.gallery",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", default="examples")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args(argv)
    files = build(args.examples, args.docs)
    print(f"{len(files)} figures written to {os.path.join(args.docs, 'gallery')}; "
          f"page {os.path.join(args.docs, 'gallery.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
