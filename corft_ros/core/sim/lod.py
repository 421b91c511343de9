"""A render-only level of detail for the sim's meshes: the same scene drawn from fewer triangles.

The UR5e and Robotiq meshes have 185k triangles; Mesa's software rasterizer spends most of a 64x64 frame on them
(measured: front 22 ms, wrist 14 ms; with every mesh cut to one triangle 3.9 / 2.1 ms). Physics never sees this:
the simplified copy of the model is used only to draw, the physics model and its collision geometry are untouched.

Vertex clustering: vertices of a mesh that fall in the same `cell`-sized cube are merged onto the one nearest to the
cube's mean (an existing vertex, so the mesh's own normals and texture coordinates stay valid), triangles that
collapse are dropped. The kept triangles are written into the front of each mesh's own slots of a model copy and
its face count lowered; MuJoCo uploads that many triangles when a renderer is made from the copy.
"""

from __future__ import annotations

import copy

import numpy as np


def simplified_for_rendering(model, cell: float):
    """A copy of `model` whose meshes are drawn from clustered vertices (`cell` in m; 0: an unchanged copy)."""
    if cell < 0 or not np.isfinite(cell):
        raise ValueError(f"render level of detail must be a distance >= 0 m, got {cell}")
    render = copy.deepcopy(model)
    if cell == 0:
        return render
    for mesh in range(render.nmesh):
        _cluster_mesh(render, mesh, cell)
    return render


def _cluster_mesh(m, mesh: int, cell: float) -> None:
    va, vn = m.mesh_vertadr[mesh], m.mesh_vertnum[mesh]
    fa, fn = m.mesh_faceadr[mesh], m.mesh_facenum[mesh]
    if vn == 0 or fn == 0:
        return
    vertices = m.mesh_vert[va:va + vn]
    grid = np.floor(vertices / cell).astype(np.int64)
    grid -= grid.min(axis=0)
    span = grid.max(axis=0) + 1
    key = (grid[:, 0] * span[1] + grid[:, 1]) * span[2] + grid[:, 2]  # one integer per cube: a 1-D unique
    _, cell_of, counts = np.unique(key, return_inverse=True, return_counts=True)
    means = np.stack([np.bincount(cell_of, vertices[:, k], counts.size) for k in range(3)], axis=1) / counts[:, None]
    # per cell, its vertex nearest to the cell's mean represents it
    order = np.lexsort((np.linalg.norm(vertices - means[cell_of], axis=1), cell_of))
    first = np.ones(vn, dtype=bool)
    first[1:] = cell_of[order][1:] != cell_of[order][:-1]
    representative = np.empty(counts.size, dtype=np.int64)
    representative[cell_of[order][first]] = order[first]
    faces = representative[cell_of][m.mesh_face[fa:fa + fn]]
    whole = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    corners = np.sort(faces[whole], axis=1)
    _, unique = np.unique((corners[:, 0] * vn + corners[:, 1]) * vn + corners[:, 2], return_index=True)
    kept = np.flatnonzero(whole)[np.sort(unique)]  # each surviving triangle once, in the mesh's order
    n = kept.size
    m.mesh_facenormal[fa:fa + n] = m.mesh_facenormal[fa:fa + fn][kept]
    if m.mesh_texcoordnum[mesh] > 0:
        m.mesh_facetexcoord[fa:fa + n] = m.mesh_facetexcoord[fa:fa + fn][kept]
    m.mesh_face[fa:fa + n] = faces[kept]
    m.mesh_facenum[mesh] = n
