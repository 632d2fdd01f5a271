"""The examples that ship with graphc, installed as the package ``graphc_examples``: each file
declares ``example = gc.Example(...)`` for ``graphc train``, ``emit`` and ``render``, which
find them by name (``graphc train mlp_digits``); ``graphc examples`` lists them."""
