"""Tracked-sequence files: PLUS/Slicer metafiles, the NRRD variant, Perk Tutor XML; malformed files."""
import numpy as np
import pytest

from simulator.core.geometry import pose_from_tip_axis
from simulator.core.trackfiles import (
    TrackFileError,
    index_time,
    read_sequence_metafile,
    read_sequence_nrrd,
    read_tracked,
    read_transform_recorder_xml,
    recording_sequences,
    resample,
    write_sequence_metafile,
    write_transform_recorder_xml,
)


def poses(n, start=(0.0, 0.0, 10.0)):
    return np.array([pose_from_tip_axis(np.array(start) + [i, 0.5 * i, -2.0 * i], [0.1, 0.2, -1.0]) for i in range(n)])


def mat_text(m):
    return " ".join(f"{x:.6f}" for x in m.reshape(16))


HEADER_PLUS = "ObjectType = Image\nNDims = 3\nAnatomicalOrientation = RAI\nBinaryData = True\nCompressedData = False\n"


def test_plus_style_file_with_placeholder_bytes_and_no_spaces(tmp_path):
    m = poses(3)
    lines = [HEADER_PLUS + "DimSize = 1 1 3", "ElementType = MET_UCHAR", "UltrasoundImageOrientation = MF"]
    for i in range(3):
        lines.append(f"Seq_Frame{i:04d}_StylusTipToReferenceTransform ={mat_text(m[i])}")  # no space after '='
        lines.append(f"Seq_Frame{i:04d}_StylusTipToReferenceTransformStatus=OK")
        lines.append(f"Seq_Frame{i:04d}_ProbeToReferenceTransform = {mat_text(np.eye(4))}")
        lines.append(f"Seq_Frame{i:04d}_ProbeToReferenceTransformStatus = {'INVALID' if i == 1 else 'OK'}")
        lines.append(f"Seq_Frame{i:04d}_Timestamp = {10.0 + 0.25 * i}")
        lines.append(f"Seq_Frame{i:04d}_ImageStatus = INVALID")
    lines.append("ElementDataFile = LOCAL")
    f = tmp_path / "plus.igs.mha"
    f.write_bytes(("\r\n".join(lines) + "\r\n").encode() + bytes([0, 255, 7]))
    rec = read_tracked(f)
    assert list(rec.sequences) == ["StylusTipToReference", "ProbeToReference"]
    assert rec.master.name == "StylusTipToReference"
    s = rec.find("StylusTipToReferenceTransform")
    assert s.time_s.tolist() == [10.0, 10.25, 10.5]
    assert np.allclose(s.matrices, m, atol=1e-6)
    assert rec.header["UltrasoundImageOrientation"] == "MF" and rec.header["DimSize"] == "1 1 3"
    probe = rec.find("probetoreference")  # case-insensitive fallback
    assert probe.valid.tolist() == [True, False, True]  # Slicer keeps INVALID samples
    assert read_tracked(f, skip_invalid=True).find("ProbeToReference").time_s.tolist() == [10.0, 10.5]


def test_slicer_style_round_trip_and_millisecond_index(tmp_path):
    m = poses(5)
    t = np.array([0.0, 0.0004, 0.5, 1.0, 1.2])  # the second sample falls in the first's millisecond
    f = write_sequence_metafile(tmp_path / "s.seq.mha", {"NeedleTipToRAS": (t, m)})
    text = f.read_text()
    assert "DimSize = 0 0 5" in text and text.rstrip().endswith("ElementDataFile = LOCAL")
    rec = read_sequence_metafile(f)
    s = rec.find("NeedleTipToRAS")
    # Slicer indexes by time rounded to 3 decimals: the later of two samples replaces the earlier
    assert s.time_s.tolist() == [0.0, 0.5, 1.0, 1.2]
    assert np.allclose(s.matrices[0], m[1])
    assert index_time(1.23456) == 1.235
    # PLUS style writes placeholder bytes after the header
    g = write_sequence_metafile(tmp_path / "p.igs.mha", {"NeedleTipToRAS": (t, m)}, style="plus")
    assert g.read_bytes().endswith(b"ElementDataFile = LOCAL\n" + bytes(5))
    assert np.allclose(read_tracked(g).find("NeedleTipToRAS").matrices, s.matrices)


def test_perk_tutor_xml_unsorted_devices_and_messages(tmp_path):
    xml = """<TransformRecorderLog>
  <log TimeStampSec="7" TimeStampNSec="500000000" type="transform" DeviceName="NeedleTipToRAS"
       transform="1 0 0 3  0 1 0 0  0 0 1 0  0 0 0 1 " />
  <log TimeStampSec="7" TimeStampNSec="0" type="transform" DeviceName="ProbeToRAS" transform="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1" />
  <log TimeStampSec="7" TimeStampNSec="256000000" type="message" message="Task 1" />
  <log TimeStampSec="7" TimeStampNSec="0" type="transform" DeviceName="NeedleTipToRAS"
       transform="1 0 0 0  0 1 0 0  0 0 1 0  0 0 0 1 " />
  <log TimeStampSec="8" TimeStampNSec="0" type="transform" DeviceName="NeedleTipToRAS"
       transform="1 0 0 3  0 1 0 4  0 0 1 0  0 0 0 1 " />
</TransformRecorderLog>
"""
    f = tmp_path / "log.xml"
    f.write_text(xml)
    rec = read_transform_recorder_xml(f)
    assert list(rec.sequences) == ["NeedleTipToRAS", "ProbeToRAS"]  # in order of first appearance
    s = rec.find("NeedleTipToRAS")
    assert s.time_s.tolist() == [7.0, 7.5, 8.0]  # sorted
    assert s.matrices[:, 0, 3].tolist() == [0.0, 3.0, 3.0] and s.matrices[2, 1, 3] == 4.0
    assert rec.messages == [(7.256, "Task 1")]
    # writer and reader agree
    g = write_transform_recorder_xml(tmp_path / "w.xml", {k: (v.time_s, v.matrices) for k, v in rec.sequences.items()},
                                     rec.messages)
    back = read_tracked(g)
    assert np.allclose(back.find("NeedleTipToRAS").matrices, s.matrices)
    assert back.messages == rec.messages


def test_nrrd_variant(tmp_path):
    m = poses(2)
    lines = ["NRRD0004", "# Complete NRRD file format specification at:", "type: unsigned char", "dimension: 3",
             "sizes: 0 0 2"]
    for i in range(2):
        lines.append(f"Seq_Frame{i:04d}_NeedleToTrackerTransform:={mat_text(m[i])}")
        lines.append(f"Seq_Frame{i:04d}_Timestamp:={1.5 + i}")
    f = tmp_path / "a.seq.nrrd"
    f.write_text("\n".join(lines) + "\n\n")
    rec = read_sequence_nrrd(f)
    assert rec.find("NeedleToTracker").time_s.tolist() == [1.5, 2.5]
    assert rec.header["sizes"] == "0 0 2"
    assert read_tracked(f).format == "nrrd"


def test_resampling_follows_the_master(tmp_path):
    m = poses(4)
    xml = ["<TransformRecorderLog>"]
    for i, t in enumerate([0.0, 1.0, 2.0, 3.0]):
        xml.append(f'<log TimeStampSec="{int(t)}" TimeStampNSec="0" type="transform" DeviceName="NeedleTipToRAS" '
                   f'transform="{mat_text(m[i])}"/>')
    for t, x in [(0.0004, 1.0), (1.5, 2.0), (2.9995, 3.0)]:
        sec = int(t)
        ns = int(round((t - sec) * 1e9))
        xml.append(f'<log TimeStampSec="{sec}" TimeStampNSec="{ns}" type="transform" DeviceName="ProbeToRAS" '
                   f'transform="1 0 0 {x} 0 1 0 0 0 0 1 0 0 0 0 1"/>')
    xml.append("</TransformRecorderLog>")
    f = tmp_path / "two.xml"
    f.write_text("\n".join(xml))
    rec = read_tracked(f)
    times, mats = resample(rec)
    assert times.tolist() == [0.0, 1.0, 2.0, 3.0]
    # probe: 0.0004 -> index 0.0 (same ms); at 1.0 the latest earlier (0.0); 2.0 -> 1.5; 3.0 -> 2.9995 -> 3.0
    assert mats["ProbeToRAS"][:, 0, 3].tolist() == [1.0, 1.0, 2.0, 3.0]
    t2, mats2 = resample(rec, master="ProbeToRAS")
    assert t2.tolist() == [0.0, 1.5, 3.0]
    assert np.allclose(mats2["NeedleTipToRAS"][:, :3, 3], m[[0, 1, 3], :3, 3])


@pytest.mark.parametrize(
    "content, line, words",
    [
        ("ObjectType = Image\nNDims = 3\nSeq_Frame0000_NeedleTransform = 1 0 0\nElementDataFile = LOCAL\n", 3, "16 numbers"),
        ("ObjectType = Image\nSeq_Frame0000_NeedleTransform = " + "1 " * 16 + "\nSeq_Frame0000_Timestamp = soon\n", 3,
         "not a number"),
        ("ObjectType = Image\nNDims = 3\nthis line has no equals sign\n", 3, "Key = Value"),
        ("ObjectType = Image\nSeq_Frame0000_NeedleTransform = " + "1 " * 15 + "x\n", 2, "not a number"),
        ("ObjectType = Image\nSeq_Frame0000_NeedleTransform = " + "1 " * 16 + "\nElementDataFile = LOCAL\n", 2,
         "no Seq_Frame0000_Timestamp"),
        ("ObjectType = Image\nDimSize = 1 one 3\n", 2, "DimSize"),
    ],
)
def test_malformed_metafiles_name_file_and_line(tmp_path, content, line, words):
    f = tmp_path / "bad.igs.mha"
    f.write_text(content)
    with pytest.raises(TrackFileError) as e:
        read_tracked(f)
    assert f"bad.igs.mha:{line}:" in str(e.value)
    assert words in str(e.value)


def test_other_malformed_files(tmp_path):
    f = tmp_path / "none.mha"
    f.write_text("ObjectType = Image\nNDims = 3\nElementDataFile = LOCAL\n")
    with pytest.raises(TrackFileError, match="no tracked transforms"):
        read_tracked(f)
    b = tmp_path / "binary.mha"
    b.write_bytes(bytes(range(256)))
    with pytest.raises(TrackFileError, match="binary.mha:1"):
        read_tracked(b)
    x = tmp_path / "broken.xml"
    x.write_text('<TransformRecorderLog>\n  <log TimeStampSec="1" type="transform" DeviceName="A" transform="1 2"/>\n'
                 "</TransformRecorderLog>\n")
    with pytest.raises(TrackFileError, match=r"broken.xml:2: a transform needs 16 numbers"):
        read_tracked(x)
    y = tmp_path / "notxml.xml"
    y.write_text("<TransformRecorderLog>\n<log\n")
    with pytest.raises(TrackFileError, match=r"notxml.xml:\d+: not well-formed XML"):
        read_tracked(y)
    z = tmp_path / "wrongroot.xml"
    z.write_text("<Other/>")
    with pytest.raises(TrackFileError, match="expected <TransformRecorderLog>"):
        read_tracked(z)
    with pytest.raises(TrackFileError, match="cannot open"):
        read_tracked(tmp_path / "absent.igs.mha")
    empty = tmp_path / "empty.mha"
    empty.write_text("")
    with pytest.raises(TrackFileError, match="empty.mha: the file is empty"):
        read_tracked(empty)


def test_recording_sequences_export(tmp_path):
    from simulator.benchmarks.scoring import expert_attempt, synthetic_block_anatomy, synthetic_scenario
    from simulator.core.procedure import Procedure

    proc = Procedure(synthetic_scenario(), synthetic_block_anatomy(), clock=lambda: 0.0)
    proc.set_probe_to_world(pose_from_tip_axis([0, -70, 0], [0, 1, 0]), time_s=0.0)
    expert_attempt(proc)
    seqs = recording_sequences(proc.recording)
    assert set(seqs) == {"NeedleTipToWorld", "ProbeToWorld"}
    f = write_sequence_metafile(tmp_path / "attempt.igs.mha", seqs)
    rec = read_tracked(f)
    assert np.array_equal(rec.find("NeedleTipToWorld").matrices, proc.recording.samples.needle_tip_to_world)
    assert np.array_equal(rec.find("NeedleTipToWorld").time_s, proc.recording.samples.time_s)
