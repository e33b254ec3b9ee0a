"""The History window's "Validity" tab: does the score tell experts from novices?

The instructor ticks the trainees of the expert group and of the novice group (a trainee in one
list only), may pick one scenario, and presses "Compute": per scenario, a summary line (attempts,
pass/fail agreement, experts passing, novices failing) and a table with, for the total score and
every metric, the better direction, both groups' medians, the AUC and its bootstrap 95 % interval
(`simulator.records.validity`, as `main.py records validity` prints it). An unknown trainee or a
group without scored attempts is said in `validity_message`.

Object names for tests: `validity_experts`, `validity_novices` (checkable lists), `validity_scenario`,
`validity_compute`, `validity_message`, `validity_tables` (a tab per scenario, each a table
`validity_table_<scenario id>`).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

N_BOOT = 2000


class ValidityPanel(QWidget):
    def __init__(self, store, parent=None):
        super().__init__(parent)
        self.setObjectName("validity_panel")
        self.store = store
        self.report = None
        lay = QVBoxLayout(self)
        groups = QHBoxLayout()
        self.experts = self._group(groups, "Expert group", "validity_experts")
        self.novices = self._group(groups, "Novice group", "validity_novices")
        side = QVBoxLayout()
        side.addWidget(QLabel("Scenario:"))
        self.scenario_combo = QComboBox()
        self.scenario_combo.setObjectName("validity_scenario")
        side.addWidget(self.scenario_combo)
        self.compute_button = QPushButton("Compute")
        self.compute_button.setObjectName("validity_compute")
        self.compute_button.setToolTip("AUC of every metric and the total score, with a bootstrap 95 % interval "
                                       f"({N_BOOT} resamples), and the pass/fail agreement")
        side.addWidget(self.compute_button)
        side.addStretch(1)
        groups.addLayout(side)
        lay.addLayout(groups)
        self.message = QLabel("Tick the trainees of each group, then Compute.")
        self.message.setObjectName("validity_message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.message)
        self.tables = QTabWidget()
        self.tables.setObjectName("validity_tables")
        lay.addWidget(self.tables, 1)
        self.compute_button.clicked.connect(self.compute)
        self.experts.itemChanged.connect(lambda item: self._exclusive(item, self.novices))
        self.novices.itemChanged.connect(lambda item: self._exclusive(item, self.experts))

    @staticmethod
    def _group(row: QHBoxLayout, title: str, name: str) -> QListWidget:
        box = QVBoxLayout()
        box.addWidget(QLabel(title + ":"))
        lst = QListWidget()
        lst.setObjectName(name)
        box.addWidget(lst)
        row.addLayout(box, 1)
        return lst

    def _exclusive(self, item: QListWidgetItem, other: QListWidget) -> None:
        """A trainee ticked in one group is unticked in the other."""
        if item.checkState() != Qt.CheckState.Checked:
            return
        for i in range(other.count()):
            o = other.item(i)
            if o.text() == item.text() and o.checkState() == Qt.CheckState.Checked:
                o.setCheckState(Qt.CheckState.Unchecked)

    def refresh(self) -> None:
        """The trainees and scenarios of the store (ticks kept by name)."""
        names = [t.name for t in self.store.list_trainees()]
        for lst in (self.experts, self.novices):
            ticked = set(self._ticked(lst))
            lst.blockSignals(True)
            lst.clear()
            for n in names:
                it = QListWidgetItem(n)
                it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                it.setCheckState(Qt.CheckState.Checked if n in ticked else Qt.CheckState.Unchecked)
                lst.addItem(it)
            lst.blockSignals(False)
        current = self.scenario_combo.currentData()
        self.scenario_combo.clear()
        self.scenario_combo.addItem("every scenario", None)
        seen = {}
        for a in self.store.list_attempts():
            seen.setdefault(a.scenario_id, a.scenario_title or a.scenario_id)
        for sid, title in sorted(seen.items(), key=lambda kv: kv[1]):
            self.scenario_combo.addItem(title, sid)
        i = self.scenario_combo.findData(current)
        self.scenario_combo.setCurrentIndex(max(i, 0))

    @staticmethod
    def _ticked(lst: QListWidget) -> list[str]:
        return [lst.item(i).text() for i in range(lst.count()) if lst.item(i).checkState() == Qt.CheckState.Checked]

    def tick(self, group: str, names) -> None:
        """Tick these trainees in a group ("expert" or "novice"), as a user would."""
        lst = self.experts if group == "expert" else self.novices
        for i in range(lst.count()):
            if lst.item(i).text() in names:
                lst.item(i).setCheckState(Qt.CheckState.Checked)

    def compute(self) -> None:
        from simulator.records.store import RecordsError
        from simulator.records.validity import TABLE_HEAD, header_line, summary_line, table_rows, validity_report

        self.tables.clear()
        self.report = None
        try:
            rep = validity_report(self.store, self._ticked(self.experts), self._ticked(self.novices),
                                  self.scenario_combo.currentData(), n_boot=N_BOOT)
        except RecordsError as e:
            self.message.setText(str(e))
            return
        self.report = rep
        self.message.setText(header_line(rep) + "\n" + "\n".join(summary_line(s) for s in rep.scenarios))
        for s in rep.scenarios:
            rows = table_rows(s)
            t = QTableWidget(len(rows), len(TABLE_HEAD))
            t.setObjectName(f"validity_table_{s.scenario_id}")
            t.setHorizontalHeaderLabels(TABLE_HEAD)
            for r, row in enumerate(rows):
                for c, text in enumerate(row):
                    cell = QTableWidgetItem(text)
                    cell.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    t.setItem(r, c, cell)
            t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
            t.verticalHeader().hide()
            t.setToolTip(summary_line(s))
            self.tables.addTab(t, s.scenario_title)

    def table_texts(self, scenario_id: str) -> list[list[str]]:
        t = self.findChild(QTableWidget, f"validity_table_{scenario_id}")
        return [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]
