"""A scripted user of the real window: mouse clicks and key presses through Qt's test events
(QTest), as a trainee would make them. The tests, the workstation benchmark and the screenshot
script use it; it reads the window's state only to decide what to press next.

    d = WindowDriver(window)
    d.click_skin(entry_mm)              # a left click where the entry point shows in the 3D view
    d.aim_at(target_mm)                 # arrow keys until the needle points at the target
    d.advance_to(target_mm, shot_every_mm=9.0)   # Shift+W / W, tapping Space for images
    d.key(Qt.Key.Key_F3)                # aspirate ...
"""
from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QCoreApplication, QPoint, Qt
from PySide6.QtTest import QTest

from simulator.ui.view3d import widget_point_from_display

NO_MOD = Qt.KeyboardModifier.NoModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def process(ms: int = 0) -> None:
    """Run the event loop for `ms` milliseconds (at least once)."""
    end = time.perf_counter() + ms / 1000.0
    while True:
        QCoreApplication.processEvents()
        if time.perf_counter() >= end:
            return
        time.sleep(0.002)


def wait_until(pred, timeout_s: float = 10.0, what: str = "condition") -> None:
    end = time.perf_counter() + timeout_s
    while not pred():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        QCoreApplication.processEvents()
        time.sleep(0.002)


class WindowDriver:
    def __init__(self, window):
        self.w = window
        self.activate()

    def activate(self) -> None:
        """Window shortcuts fire only in the active window."""
        w = self.w
        if not w.isActiveWindow():
            w.raise_()
            w.activateWindow()
            wait_until(w.isActiveWindow, 5.0, "the window to become active")

    # --- raw input -----------------------------------------------------------------------
    @property
    def target_widget(self):
        return self.w.view3d.vtk_widget

    def key(self, key, modifiers=NO_MOD, widget=None) -> None:
        QTest.keyClick(widget or self.target_widget, key, modifiers)

    def press(self, key, widget=None) -> None:
        QTest.keyPress(widget or self.target_widget, key)

    def release(self, key, widget=None) -> None:
        QTest.keyRelease(widget or self.target_widget, key)

    def click_world(self, point_mm) -> tuple[int, int]:
        """Left click on the 3D view where a world point shows."""
        v = self.w.view3d
        d = v.scene.world_to_display(point_mm)
        x, y = widget_point_from_display(v, d[0], d[1])
        QTest.mouseClick(v.vtk_widget, Qt.MouseButton.LeftButton, NO_MOD, QPoint(x, y))
        return x, y

    # --- the needle --------------------------------------------------------------------------
    def click_skin(self, entry_mm) -> None:
        """Choose the entry point: click where `entry_mm` shows; the needle rests on the skin."""
        self.click_world(entry_mm)
        wait_until(lambda: self.w.controller.state is not None, 5.0, "the needle on the skin")

    def angle_error(self, target_mm) -> tuple[float, float, float]:
        """(total, right, up) degrees from the needle's axis to the line skin entry -> target,
        right and up in the 3D view's screen directions."""
        st = self.w.controller.state
        start = st.skin_entry_mm if st.inserted and st.skin_entry_mm is not None else st.tip_mm
        want = np.asarray(target_mm, float) - start
        want /= np.linalg.norm(want)
        d = st.axis
        _, right, up = self.w.camera_axes()
        e = want - d
        total = math.degrees(math.acos(max(-1.0, min(1.0, float(want @ d)))))
        return total, math.degrees(float(e @ right)), math.degrees(float(e @ up))

    def aim_at(self, target_mm, tolerance_deg: float = 0.6, max_keys: int = 200) -> float:
        """Arrow keys (Shift for 5 degrees) until the needle points at the target."""
        for _ in range(max_keys):
            total, r, u = self.angle_error(target_mm)
            if total <= tolerance_deg:
                return total
            if abs(r) >= abs(u):
                key = Qt.Key.Key_Right if r > 0 else Qt.Key.Key_Left
                big = abs(r)
            else:
                key = Qt.Key.Key_Up if u > 0 else Qt.Key.Key_Down
                big = abs(u)
            if big < 0.5:  # the two small components cannot be split any finer
                return total
            self.key(key, SHIFT if big > 3.5 else NO_MOD)
        return self.angle_error(target_mm)[0]

    def start_on_plan(self, advances: int = 0) -> None:
        """The needle on the skin at the scenario's planned entry, aimed at its planned target, then
        `advances` 5 mm advances (Shift+W)."""
        plan = self.w.scenario.planned_trajectory
        self.click_skin(plan.entry_mm)
        self.aim_at(plan.target_mm)
        for _ in range(advances):
            self.key(Qt.Key.Key_W, SHIFT)

    def remaining_mm(self, target_mm) -> float:
        st = self.w.controller.state
        return float((np.asarray(target_mm, float) - st.tip_mm) @ st.axis)

    def shot(self, timeout_s: float = 30.0) -> None:
        """Tap the pedal (Space) and wait for the image."""
        fv = self.w.fluoro_view
        n = fv.frames_shown
        self.key(Qt.Key.Key_Space)
        wait_until(lambda: fv.frames_shown > n, timeout_s, "the fluoroscopy image")

    def advance_to(self, target_mm, shot_every_mm: float = 9.0, stop_mm: float = 0.6, max_keys: int = 400,
                   stop_if=None) -> None:
        """Advance towards the target (Shift+W 5 mm, then W 1 mm), an image at least every
        `shot_every_mm` (fluoroscopy scenarios); `stop_if(state)` ends it early."""
        moved = 0.0
        fluoro = self.w.modality in ("fluoroscopy", "both")
        for _ in range(max_keys):
            st = self.w.controller.state
            if stop_if is not None and stop_if(st):
                return
            rem = self.remaining_mm(target_mm)
            if rem <= stop_mm or st.bone_contact:
                return
            step = 5.0 if rem > 5.5 else 1.0
            if fluoro and moved + step > shot_every_mm:
                self.shot()
                moved = 0.0
            tip = st.tip_mm
            self.key(Qt.Key.Key_W, SHIFT if step == 5.0 else NO_MOD)
            st = self.w.controller.state
            gone = float(np.linalg.norm(st.tip_mm - tip))
            if gone < 1e-6:
                raise RuntimeError("the needle did not move (is the window active? bone?)")
            moved += gone
