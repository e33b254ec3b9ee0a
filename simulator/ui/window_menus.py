"""The main window's menus and actions (each with its shortcut, also while the menu bar is hidden),
the C-arm view presets menu, and Help (keyboard shortcuts, About).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QMessageBox, QTextBrowser, QVBoxLayout

from simulator import __version__
from simulator.render.camera import CAMERA_PRESETS, PRESET_LABELS
from simulator.ui.panels import PRESET_KEYS
from simulator.ui.window_attempt import COARSE_DEG, COARSE_MM, FINE_DEG, FINE_MM


class MenusMixin:
    """Part of `MainWindow` (simulator.ui.main_window)."""

    def _action(self, menu, text, slot, shortcut=None, checkable=False, tip=None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        menu.addAction(a)
        self.addAction(a)  # shortcuts work while the menu bar is hidden too
        return a

    def _build_menus(self) -> None:
        """One method per menu (a new menu: a method and a line here)."""
        mb = self.menuBar()
        self._build_file_menu(mb)
        self._build_view_menu(mb)
        self._build_needle_menu(mb)
        self._build_procedure_menu(mb)
        self._build_fluoroscopy_menu(mb)
        self._build_ultrasound_menu(mb)
        self._build_records_menu(mb)
        self._build_help_menu(mb)

    def _build_file_menu(self, mb) -> None:
        m = self.file_menu = mb.addMenu("&File")
        self.act_open = self._action(m, "&Open scenario\u2026", self.open_scenario_dialog, QKeySequence.StandardKey.Open)
        self.act_reload = self._action(m, "&Reload scenario", self.reload_scenario, "F5",
                                       tip="Read the scenario file again (after editing it)")
        self.act_rescan = self._action(m, "Re&scan scenario library", self.refresh_scenarios)
        m.addSeparator()
        self.act_trainee = self._action(m, "&Trainee\u2026", self.choose_trainee, "Ctrl+T",
                                        tip="Who is training: attempts are stored under this name")
        m.addSeparator()
        self.act_quit = self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)

    def _build_view_menu(self, mb) -> None:
        v = self.view_menu = mb.addMenu("&View")
        self.preset_actions: dict[str, QAction] = {}
        cam = v.addMenu("&Camera")
        for name in CAMERA_PRESETS:
            self.preset_actions[name] = self._action(
                cam, PRESET_LABELS[name], lambda _=False, n=name: self.set_camera_preset(n), PRESET_KEYS[name]
            )
        cam.addSeparator()
        self.act_reset_camera = self._action(cam, "Reset to the table view", self.reset_camera, "0")
        self.groups_menu = v.addMenu("Structure &groups")
        self.group_actions: dict[str, QAction] = {}
        v.addSeparator()
        self.act_instructor = self._action(v, "&Instructor mode", self.set_instructor_mode, "Ctrl+I", checkable=True,
                                           tip="Show targets, the plan and critical structures (exam mode hides them)")
        v.addSeparator()
        v.addAction(self.left_dock.toggleViewAction())
        v.addAction(self.right_dock.toggleViewAction())

    def _build_needle_menu(self, mb) -> None:
        n = self.needle_menu = mb.addMenu("&Needle")
        self.act_advance = self._action(n, "Advance 1 mm", lambda: self.advance(FINE_MM), "W",
                                        tip="Push the needle 1 mm (the wheel: 1 mm a notch)")
        self.act_advance_coarse = self._action(n, "Advance 5 mm", lambda: self.advance(COARSE_MM), "Shift+W")
        self.act_withdraw = self._action(n, "Withdraw 1 mm", lambda: self.advance(-FINE_MM), "S")
        self.act_withdraw_coarse = self._action(n, "Withdraw 5 mm", lambda: self.advance(-COARSE_MM), "Shift+S")
        self.act_withdraw_out = self._action(n, "Withdraw out of the skin", self.withdraw_out, "X",
                                             tip="Then click the skin to choose a new entry point")
        n.addSeparator()
        self.steer_actions = {}
        for key, label in (("Left", "left"), ("Right", "right"), ("Up", "up"), ("Down", "down")):
            self.steer_actions[(label, False)] = self._action(
                n, f"Angle the tip {label} 1\u00b0", lambda _=False, d=label: self.steer(d, FINE_DEG), key)
            self.steer_actions[(label, True)] = self._action(
                n, f"Angle the tip {label} 5\u00b0", lambda _=False, d=label: self.steer(d, COARSE_DEG), f"Shift+{key}")
        n.addSeparator()
        self.act_aim_hint = QAction("Entry point: click the skin in the 3D view", self)
        self.act_aim_hint.setEnabled(False)
        n.addAction(self.act_aim_hint)

    def _build_procedure_menu(self, mb) -> None:
        pm = self.procedure_menu = mb.addMenu("&Procedure")
        self.act_case = self._action(pm, "The &patient (case)\u2026", self.show_case_screen, "F8",
                                     tip="The case: history, drugs, anticoagulation, the earlier procedure")
        self.act_time_out = self._action(pm, "&Time-out\u2026", self.open_time_out, "F9",
                                         tip="Contraindications noticed, then proceed or defer")
        self.act_consent = self._action(pm, "&Consent\u2026", self.open_consent, "F10")
        self.act_skin_prep = self._action(pm, "&Skin preparation", self.skin_preparation, "F11")
        self.act_drape = self._action(pm, "Sterile &drape", self.drape, "F12")
        pm.addSeparator()
        self.act_local = self._action(pm, "Local anaesthetic", self.procedure_panel.request_local_anaesthetic, "F2")
        self.act_aspirate = self._action(pm, "Aspirate", self.aspirate, "F3")
        self.act_contrast = self._action(pm, "Inject contrast", lambda: self.procedure_panel.request_inject("contrast"), "F4")
        self.act_test_dose = self._action(pm, "Give the test dose", lambda: self.procedure_panel.request_inject("test_dose"), "F6")
        self.act_agent = self._action(pm, "Inject the neurolytic agent", lambda: self.procedure_panel.request_inject("neurolytic"), "F7")
        self.act_prognostic = self._action(pm, "Prognostic block (local anaesthetic at the target)", self.prognostic_block,
                                           "Shift+F7")
        pm.addSeparator()
        self.act_end = self._action(pm, "End attempt (score card)", self.end_attempt, "Ctrl+E")
        self.act_new = self._action(pm, "New attempt", self.new_attempt, "Ctrl+N")

    def _build_fluoroscopy_menu(self, mb) -> None:
        fm = self.fluoroscopy_menu = mb.addMenu("F&luoroscopy")
        self.act_shot = self._action(fm, "Single shot (tap Space; hold Space for live)", self.fluoro_view.single_shot)
        self._action(fm, "C-arm towards LAO 5\u00b0", lambda: self.fluoro_view.nudge(d_lao=5.0), "Alt+Left")
        self._action(fm, "C-arm towards RAO 5\u00b0", lambda: self.fluoro_view.nudge(d_lao=-5.0), "Alt+Right")
        self._action(fm, "C-arm cranial 5\u00b0", lambda: self.fluoro_view.nudge(d_cranial=5.0), "Alt+Up")
        self._action(fm, "C-arm caudal 5\u00b0", lambda: self.fluoro_view.nudge(d_cranial=-5.0), "Alt+Down")
        self.act_tunnel = self._action(fm, "Tunnel view", self.fluoro_view.tunnel_view, "Alt+T")
        self.carm_preset_menu = fm.addMenu("C-arm views")
        self.carm_preset_actions: list[QAction] = []

    def _build_ultrasound_menu(self, mb) -> None:
        um = self.ultrasound_menu = mb.addMenu("&Ultrasound")
        self._action(um, "Slide the probe towards the marker", lambda: self.us_view.slide(lateral_mm=1.0), "L")
        self._action(um, "Slide the probe away from the marker", lambda: self.us_view.slide(lateral_mm=-1.0), "J")
        self._action(um, "Slide the probe forwards (out of plane)", lambda: self.us_view.slide(elevation_mm=1.0), "I")
        self._action(um, "Slide the probe backwards (out of plane)", lambda: self.us_view.slide(elevation_mm=-1.0), "K")
        self._action(um, "Slide 5 mm towards the marker", lambda: self.us_view.slide(lateral_mm=5.0), "Shift+L")
        self._action(um, "Slide 5 mm away from the marker", lambda: self.us_view.slide(lateral_mm=-5.0), "Shift+J")
        self._action(um, "Rotate the probe clockwise 5\u00b0", lambda: self.us_view.rotate(5.0), "O")
        self._action(um, "Rotate the probe anticlockwise 5\u00b0", lambda: self.us_view.rotate(-5.0), "U")
        self._action(um, "Tilt the probe 2\u00b0", lambda: self.us_view.tilt(2.0), "M")
        self._action(um, "Tilt the probe back 2\u00b0", lambda: self.us_view.tilt(-2.0), "N")
        self._action(um, "Rock the probe heel-toe 2\u00b0 (towards the marker)", lambda: self.us_view.rock(2.0), "Y")
        self._action(um, "Rock the probe heel-toe 2\u00b0 (away from the marker)", lambda: self.us_view.rock(-2.0), "H")
        self._action(um, "Press the probe in 0.5 mm", lambda: self.us_view.press(0.5), "B")
        self._action(um, "Ease the probe off 0.5 mm", lambda: self.us_view.press(-0.5), "G")
        um.addSeparator()
        self._action(um, "Deeper", lambda: self.us_view.change_depth(5.0), "Ctrl+Down")
        self._action(um, "Shallower", lambda: self.us_view.change_depth(-5.0), "Ctrl+Up")
        self._action(um, "More gain", lambda: self.us_view.change_gain(2.0), "Ctrl+Right")
        self._action(um, "Less gain", lambda: self.us_view.change_gain(-2.0), "Ctrl+Left")
        self._action(um, "Colour Doppler on/off", lambda: self.us_view.doppler_box.toggle(), "Ctrl+D")
        self._action(um, "M-mode on/off (the central line over time: lung sliding)", lambda: self.us_view.mmode_box.toggle(),
                     "Ctrl+M")

    def _build_records_menu(self, mb) -> None:
        r = self.records_menu = mb.addMenu("&Records")
        self.act_replay = self._action(r, "&Replay attempt\u2026", self.replay_attempt_dialog, "Ctrl+R",
                                       tip="Replay a stored attempt with a timeline")
        self.act_replay_last = self._action(r, "Replay the &last attempt", self.replay_last_attempt, "Ctrl+Shift+R")
        self.act_history = self._action(r, "&History and learning curves\u2026", self.show_history, "Ctrl+H",
                                        tip="Your attempts per scenario, scores and learning curves")
        self.act_overview = self._action(r, "&Instructor overview\u2026", lambda: self.show_history(overview=True),
                                         "Ctrl+Shift+H", tip="All trainees and scenarios")
        self.act_centre = self._action(r, "&Centre dashboard\u2026", self.show_centre_dashboard,
                                       tip="Every workstation of the simulation centre live, and the cohort's curves")
        r.addSeparator()
        self.act_play = self._action(r, "Replay: play / pause", self._replay_toggle, "P")
        self.act_replay_start = self._action(r, "Replay: back to the start", self._replay_to_start, "Home")
        self.act_replay_faster = self._action(r, "Replay: faster", lambda: self._replay_speed_step(1), "]")
        self.act_replay_slower = self._action(r, "Replay: slower", lambda: self._replay_speed_step(-1), "[")
        self.act_stop_replay = self._action(r, "Stop replay", self.stop_replay, "Esc")
        self._update_replay_actions()

    def _build_help_menu(self, mb) -> None:
        h = self.help_menu = mb.addMenu("&Help")
        self.act_shortcuts = self._action(h, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = self._action(h, "&About", self.show_about)

    def _fill_carm_presets(self) -> None:
        for a in self.carm_preset_actions:
            self.removeAction(a)
        self.carm_preset_menu.clear()
        self.carm_preset_actions = []
        for i, name in enumerate(self.fluoro_view.presets):
            a = self._action(self.carm_preset_menu, name.replace("_", " "),
                             lambda _=False, n=name: self.fluoro_view.apply_preset(n),
                             f"Alt+{i + 1}" if i < 9 else None)
            self.carm_preset_actions.append(a)

    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = []
        for a in self.actions():
            seq = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if seq:
                rows.append((seq, a.text().replace("&", "").replace("\u2026", "")))
        rows += [
            ("Space (tap / hold)", "Fluoroscopy pedal: one image / live fluoroscopy while held"),
            ("Left click on the skin", "Choose the needle's entry point (it aims along your line of sight)"),
            ("Wheel / Shift+wheel", "Advance or withdraw the needle 1 mm / 5 mm a notch"),
            ("Ctrl+left drag (3D view)", "Angle the needle"),
            ("Left drag (3D view)", "Rotate the 3D view"),
            ("Right drag / Ctrl+wheel", "Zoom the 3D view"),
            ("Middle drag / Shift+left drag", "Pan the 3D view"),
            ("Drag on the ultrasound image", "Slide the probe; Ctrl+drag rotates and tilts it"),
            ("Double-click a saved image", "Review it on the fluoroscopy screen"),
            ("Drag the replay slider", "Replay: go to that moment of the recorded attempt (all views follow)"),
            ("Double-click an attempt (history)", "Replay it"),
            ("Click a slice view (editor)", "Place the point being edited: a target, a nerve point, the needle's tip"),
            ("Wheel / Page Up, Down (editor slices)", "Move through the slices; Ctrl+wheel zooms"),
            ("Enter / double-click (editor)", "Finish the nerve being drawn; Backspace removes its last point"),
        ]
        return rows

    def show_shortcuts(self) -> None:
        dlg = QDialog(self)
        dlg.setObjectName("shortcuts_dialog")
        dlg.setWindowTitle("Keyboard shortcuts")
        lay = QVBoxLayout(dlg)
        text = QTextBrowser()
        text.setHtml(
            "<table cellpadding=3>"
            + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in self.shortcut_rows())
            + "</table>"
        )
        lay.addWidget(text)
        dlg.resize(460, 520)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()
        self.shortcuts_dialog = dlg

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About Neurolysis Trainer",
                          f"Neurolysis Trainer {__version__}\n\nA simulator for image-guided needle placement "
                          "in chemical neurolysis (fluoroscopy and ultrasound).\n\nFor training only: not for "
                          "clinical use.", QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
