"""The Qt layer: `app.run_app` starts the trainer; `main_window.MainWindow` is the shell; the 3D
view (`view3d.View3D`) composes a QVTKRenderWindowInteractor around `render.scene.AnatomyScene`."""
