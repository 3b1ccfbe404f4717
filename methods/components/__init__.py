"""Building blocks the methods share: similarity losses, regularisers, networks, pyramids, filters.

Layout follows deepali: stateless functions (``lncc_loss(fixed, warped)``, ``diffusion_loss(disp)``) carry the
maths; thin ``nn.Module`` wrappers (``LNCC``, ``Diffusion``) store settings and call them. Tensors are
(B, C, *spatial) for images and (B, ndim, *spatial) for displacements in voxel units, 2D and 3D alike, as in
``regbench.spatial``. Every loss is minimised: 0 (or its most negative value) means a perfect match.
"""
