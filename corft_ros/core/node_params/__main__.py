"""`python -m corft_ros.core.node_params > docs/parameters.md`: the node parameter reference."""

from corft_ros.core.node_params import reference_markdown

print(reference_markdown(), end="")
