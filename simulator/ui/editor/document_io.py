"""The scenario editor's document I/O: new (from a dialog), edit the current scenario, open, save,
save as (refusing an invalid document), undo/redo, the YAML text, and trying the scenario in
practice.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)



class NewScenarioDialog(QDialog):
    """Template, anatomy, id and title of a new scenario."""

    def __init__(self, parent=None):
        super().__init__(parent)
        from simulator.core.scenario import list_scenarios

        self.setObjectName("new_scenario_dialog")
        self.setWindowTitle("New scenario from a template")
        lay = QVBoxLayout(self)
        f = QFormLayout()
        self.template = QComboBox()
        self.template.setObjectName("template_choice")
        for e in list_scenarios():
            if e.ok:
                self.template.addItem(f"{e.title} ({e.id})", str(e.path))
        self.anatomy = QComboBox()
        self.anatomy.setObjectName("anatomy_choice")
        for ref, text in self.anatomies():
            self.anatomy.addItem(text, ref)
        self.scenario_id = QLineEdit()
        self.scenario_id.setObjectName("new_id")
        self.scenario_id.setPlaceholderText("e.g. celiac_left_only")
        self.title = QLineEdit()
        self.title.setObjectName("new_title")
        f.addRow("Template", self.template)
        f.addRow("Anatomy", self.anatomy)
        f.addRow("Id", self.scenario_id)
        f.addRow("Title", self.title)
        lay.addLayout(f)
        note = QLabel("On the template's own anatomy its targets and plan are kept; on another anatomy "
                      "they are removed (targets named by a proposal keep it) and you place them anew.")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    @staticmethod
    def anatomies() -> list[tuple[str, str]]:
        out = [("bundled", "bundled patient (CT, labelled)")]
        try:
            from simulator.anatomy.phantoms import PHANTOMS

            out += [(f"phantom:{n}", f"phantom: {n.replace('_', ' ')}") for n in PHANTOMS]
        except ImportError:
            pass
        try:
            from simulator.core.paths import anatomies_dir

            for d in sorted(anatomies_dir().iterdir()):
                if (d / "anatomy.json").exists():
                    out.append((f"user:{d.name}", f"imported: {d.name}"))
        except OSError:
            pass
        return out

    def choose(self, combo: QComboBox, data: str) -> bool:
        i = combo.findData(data)
        if i < 0:
            for j in range(combo.count()):
                if str(combo.itemData(j)).endswith(f"/{data}.yaml"):
                    i = j
        if i >= 0:
            combo.setCurrentIndex(i)
        return i >= 0


class DocumentMixin:
    """Part of `EditorMode` (simulator.ui.editor.mode)."""

    def _confirm_replace(self) -> bool:
        """Before another document replaces a changed one."""
        self.binder.flush()
        doc = self.doc
        if doc is None or not doc.dirty:
            return True
        answer = self.window.ask("editor_unsaved", "The scenario in the editor has unsaved changes. Save them first?",
                                 {"save": "Save", "discard": "Discard", "cancel": "Cancel"}, "cancel")
        if answer == "cancel":
            return False
        if answer == "save":
            return self.save() is not None
        return True

    def _drop_document(self) -> None:
        if self.doc is not None:
            self.doc.unsubscribe(self._on_doc_change)
        self.doc = None
        self.practice_path = None
        self.binder.set_document(None)

    def set_document(self, doc) -> None:
        if self.doc is not None and self.doc is not doc:
            self.doc.unsubscribe(self._on_doc_change)
        self.doc = doc
        self.pending = []
        self.pending_entry = self.pending_target = None
        self.plan_panel.index = 0
        self.tunnel_frame = None
        self.plan_panel.tunnel.set_image(None)
        self.plan_panel.tunnel_info.setText("")
        doc.subscribe(self._on_doc_change)
        self.yaml_view.document().setModified(False)
        for ed in (self.targets_panel.editor, self.critical_panel.editor, self.rubric_panel.editor, self.text_panel.editor,
                   self.steps_panel.options, self.patient_panel.key):
            ed.index = 0 if doc.get(ed.list_path) else -1
        self.binder.set_document(doc)
        self._ensure_anatomy()
        if self.anatomy is not None and self.anatomy_ref == doc.get(("anatomy",)):
            self._centre_on_plan()  # the same patient: the slices go to this scenario's plan
        self.refresh_all()
        self.document_changed.emit()

    def new_scenario(self, *, template: str, anatomy: str, scenario_id: str, title: str) -> bool:
        from simulator.core.scenario import ScenarioError
        from simulator.core.scenario_doc import ScenarioDocument

        if not self._confirm_replace():
            return False
        try:
            doc = ScenarioDocument.new(scenario_id=scenario_id, title=title, anatomy=anatomy, template=template)
        except (ScenarioError, OSError, LookupError, ValueError) as e:
            self.window.report_error("Cannot make the scenario", f"template {template}: {e}")
            return False
        self.practice_path = None
        self.set_document(doc)
        return self.enter()

    def new_scenario_dialog(self) -> NewScenarioDialog:
        dlg = NewScenarioDialog(self.window)
        if self.window.scenario_path:
            dlg.choose(dlg.template, str(self.window.scenario_path))
        if self.window.anatomy_ref:
            dlg.choose(dlg.anatomy, self.window.anatomy_ref)
        dlg.accepted.connect(lambda: self.new_scenario(
            template=dlg.template.currentData(), anatomy=dlg.anatomy.currentData(),
            scenario_id=dlg.scenario_id.text().strip(), title=dlg.title.text().strip()))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.new_dialog = dlg
        dlg.open()
        return dlg

    def edit_current(self) -> bool:
        """The scenario on screen in the trainer (back to the editor's document after a try)."""
        from simulator.core.scenario import ScenarioError
        from simulator.core.scenario_doc import ScenarioDocument

        w = self.window
        if self.active:
            return True
        if self.doc is not None and self.practice_path is not None and w.scenario_path is not None \
                and Path(w.scenario_path).resolve() == self.practice_path.resolve():
            return self.enter()
        if not w.scenario_path:
            w.statusBar().showMessage("No scenario to edit: open one, or make a new one from a template", 8000)
            return False
        if not self._confirm_replace():
            return False
        try:
            doc = ScenarioDocument.open(w.scenario_path)
        except (ScenarioError, OSError) as e:
            w.report_error("Cannot open the scenario in the editor", str(e))
            return False
        self.practice_path = None
        self.set_document(doc)
        return self.enter()

    def open_file(self, path) -> bool:
        from simulator.core.scenario import ScenarioError
        from simulator.core.scenario_doc import ScenarioDocument

        if not self._confirm_replace():
            return False
        try:
            doc = ScenarioDocument.open(path)
        except (ScenarioError, OSError) as e:
            self.window.report_error("Cannot open the scenario in the editor", f"{path}: {e}")
            return False
        self.practice_path = None
        self.set_document(doc)
        return self.enter()

    def _ask_file(self, caption: str, default: Path, save: bool) -> str | None:
        if self.choose_file is not None:
            return self.choose_file(caption, default, save)
        filt = "Scenario files (*.yaml *.yml)"
        if save:
            path, _ = QFileDialog.getSaveFileName(self.window, caption, str(default), filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self.window, caption, str(default), filt)
        return path or None

    def open_file_dialog(self) -> bool:
        from simulator.core.paths import user_scenarios_dir

        path = self._ask_file("Open a scenario in the editor", user_scenarios_dir(), save=False)
        return self.open_file(path) if path else False

    @staticmethod
    def _in_library(path: Path) -> bool:
        from simulator.core.paths import SCENARIOS_DIR

        try:
            Path(path).resolve().relative_to(SCENARIOS_DIR.resolve())
            return True
        except ValueError:
            return False

    def save(self) -> Path | None:
        """Save to the document's file; a new scenario, or one of the library's, goes to a file
        chosen in the user's scenarios folder (Save as)."""
        self.binder.flush()
        doc = self.doc
        if doc is None:
            return None
        if doc.path is None or self._in_library(doc.path) or (self.practice_path is not None and doc.path == self.practice_path):
            return self.save_as()
        return self._save_to(doc.path)

    def save_as(self, path=None) -> Path | None:
        self.binder.flush()
        doc = self.doc
        if doc is None:
            return None
        if not self._refuse_invalid("saved"):
            return None
        if path is None:
            path = self._ask_file("Save the scenario as", doc.default_save_path(), save=True)
            if not path:
                return None
        return self._save_to(Path(path))

    def _refuse_invalid(self, what: str) -> bool:
        doc = self.doc
        errs = doc.formatted_errors()
        if errs:
            self.window.report_error(f"The scenario is not {what}: it has errors", "\n".join(errs))
            self.tabs.setCurrentIndex(self._tab_index(self._tab_of(doc.errors()[0].field)))
            return False
        return True

    def _save_to(self, path: Path) -> Path | None:
        from simulator.core.scenario import ScenarioError

        if not self._refuse_invalid("saved"):
            return None
        try:
            saved = self.doc.save(path)
        except (ScenarioError, OSError, ValueError) as e:
            self.window.report_error("The scenario is not saved", f"{path}: {e}")
            return None
        self.window.statusBar().showMessage(f"Scenario saved: {saved}", 8000)
        self.window.refresh_scenarios()
        self.refresh_all()
        return Path(saved)

    def undo(self) -> None:
        if self.doc is not None:
            self.binder.flush()
            self.binder.end_merge()
            self.doc.undo()

    def redo(self) -> None:
        if self.doc is not None:
            self.binder.flush()
            self.binder.end_merge()
            self.doc.redo()

    def try_in_practice(self) -> bool:
        """Save a copy (the user's data folder; the document keeps its own file), leave the
        editor and open the copy in the trainer, instructor (practice) mode. "Edit current
        scenario" comes back to this document."""
        from simulator.core.paths import user_data_dir

        self.binder.flush()
        doc = self.doc
        if doc is None or not self._refuse_invalid("tried"):
            return False
        sid = doc.get(("id",)) or "scenario"
        folder = user_data_dir() / "editor"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sid}.practice.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(doc.text(), encoding="utf-8")
        tmp.replace(path)
        self.practice_path = path
        self.leave(ask=False)
        w = self.window
        w.set_instructor_mode(True)
        ok = w.open_scenario(str(path))
        if ok:
            w.statusBar().showMessage("Practice: the scenario from the editor (Scenario editor \u2192 Edit current "
                                      "scenario goes back to it)", 10000)
        return ok

    def _show_yaml(self) -> None:
        """The document's text in the YAML tab (unless the instructor is typing there)."""
        if self.doc is None or self.tabs.currentWidget() is not self.yaml_tab:
            return
        if self.yaml_view.document().isModified():
            return
        if self.yaml_view.toPlainText() != self.doc.text():
            bar = self.yaml_view.verticalScrollBar().value()
            self.yaml_view.setPlainText(self.doc.text())
            self.yaml_view.verticalScrollBar().setValue(bar)
        self.yaml_view.document().setModified(False)

    def apply_yaml(self) -> None:
        """The text typed in the YAML tab becomes the document (one undo step)."""
        if self.doc is None:
            return
        text = self.yaml_view.toPlainText()
        if not text.endswith("\n"):
            text += "\n"
        self.yaml_view.document().setModified(False)
        self.doc.set_text(text, label="Edit the YAML text")
        self.refresh_all()
