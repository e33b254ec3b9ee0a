"""The 3D scene with VTK and no Qt (renders in a Qt widget or offscreen): `scene.AnatomyScene`."""
