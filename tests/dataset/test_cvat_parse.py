"""Streaming CVAT parse: xmltodict shape, task/project exports, labels, unsafe and broken XML."""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import pytest
import xmltodict

from tests.support.cvat import tag_image, task_xml, write_xml
from trainkit_runtime import cvat_dataset
from trainkit_runtime.dataset import DatasetError

RICH_TASK = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>3</id>
      <name>rich</name>
      <labels>
        <label><name>dog</name><color>#ff0000</color><type>rectangle</type>
          <attributes><attribute><name>pose</name><mutable>False</mutable>
            <input_type>select</input_type><default_value>up</default_value>
            <values>up
down</values></attribute></attributes></label>
        <label><name>cat</name><color>#00ff00</color><type>any</type><attributes/></label>
        <label><name>body</name><type>skeleton</type><svg>&lt;line x1="1"/&gt;</svg></label>
        <label><name>head</name><type>points</type><parent>body</parent></label>
      </labels>
    </task>
    <dumped>2024-01-01</dumped>
  </meta>
  <image id="0" name="dir/a.jpg" width="100" height="50">
    <box label="dog" source="manual" occluded="0" xtl="10.5" ytl="5" xbr="30" ybr="25" z_order="0">
      <attribute name="pose">up</attribute>
    </box>
  </image>
  <image id="1" name="b b.jpg" width="100" height="50">
    <box label="dog" occluded="0" xtl="0" ytl="0" xbr="10" ybr="10"></box>
    <polygon label="cat" points="1,1;20,1;20,20" occluded="0"/>
    <box label="cat" occluded="1" xtl="5" ytl="5" xbr="90" ybr="45"/>
    <polyline label="dog" points="0,0;5,5"/>
    <points label="cat" points="3,3"/>
    <skeleton label="body" z_order="0">
      <points label="head" outside="0" points="4,4"/>
    </skeleton>
    <tag label="cat" source="manual"><attribute name="x">1</attribute>
      <attribute name="y">2</attribute></tag>
  </image>
  <image id="2" name="ü n.jpg" width="10" height="10"></image>
</annotations>
"""

PROJECT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <project>
      <id>9</id><name>p</name>
      <labels>
        <label><name>zebra</name><attributes/></label>
        <label><name>ant</name><attributes/></label>
      </labels>
      <tasks>
        <task><id>1</id><name>t1</name><subset>Train</subset></task>
        <task><id>2</id><name>t2</name><subset>Validation</subset></task>
      </tasks>
    </project>
  </meta>
  <image id="0" name="1.jpg" subset="Train" task_id="1" width="8" height="8">
    <tag label="zebra"/>
  </image>
  <image id="1" name="2.jpg" subset="Validation" task_id="2" width="8" height="8">
    <tag label="ant"/>
  </image>
</annotations>
"""


def parse(path: Path):
    labels, images = None, []
    for kind, value in cvat_dataset.iter_cvat_annotations(path):
        if kind == "labels":
            labels = value
        else:
            images.append(value)
    return labels, images


def test_images_have_exactly_the_xmltodict_shape(tmp_path):
    path = write_xml(tmp_path / "a.xml", RICH_TASK)
    _, images = parse(path)
    expected = xmltodict.parse(RICH_TASK)["annotations"]["image"]
    assert images == expected
    # the shapes existing setup.py files rely on
    assert isinstance(images[0]["box"], dict)
    assert images[0]["box"]["@xtl"] == "10.5"
    assert images[0]["box"]["attribute"] == {"@name": "pose", "#text": "up"}
    assert isinstance(images[1]["box"], list) and len(images[1]["box"]) == 2
    assert images[1]["tag"]["attribute"][1] == {"@name": "y", "#text": "2"}
    assert images[1]["skeleton"]["points"]["@label"] == "head"
    assert images[2] == {"@id": "2", "@name": "ü n.jpg", "@width": "10", "@height": "10"}


def test_element_to_dict_text_and_empty(tmp_path):
    xml = "<r><a/><b>t</b><c x='1'>t<d/>u</c><e>\n  </e><f><g/><g>x</g></f></r>"
    import defusedxml.ElementTree as et

    got = cvat_dataset.element_to_dict(et.fromstring(xml))
    assert got == xmltodict.parse(xml)["r"]


def test_labels_in_labels_order_and_skeletons_are_not_classes(tmp_path):
    labels, _ = parse(write_xml(tmp_path / "a.xml", RICH_TASK))
    # the skeleton label and its parts are known (their shapes are not "unknown") but no
    # task trains on skeletons, so "body" is not a class
    assert labels.names == ["dog", "cat"]
    assert labels.skeletons == ["body"]
    assert labels.known == {"dog", "cat", "body", "head"}


def test_project_export_labels_and_subset(tmp_path):
    labels, images = parse(write_xml(tmp_path / "p.xml", PROJECT))
    assert labels.names == ["zebra", "ant"]
    assert [i["@subset"] for i in images] == ["Train", "Validation"]


def test_several_tasks_union_in_order(tmp_path):
    xml = (
        "<annotations><meta>"
        "<task><labels><label><name>b</name></label><label><name>a</name></label></labels></task>"
        "<task><labels><label><name>a</name></label><label><name>c</name></label></labels></task>"
        "</meta></annotations>"
    )
    labels, _ = parse(write_xml(tmp_path / "t.xml", xml))
    assert labels.names == ["b", "a", "c"]


def test_labels_are_deterministic_across_runs(tmp_path):
    path = write_xml(tmp_path / "a.xml", task_xml(["z", "m", "a", "q"], tag_image("x.jpg", "a")))
    assert {tuple(parse(path)[0].names) for _ in range(5)} == {("z", "m", "a", "q")}


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<annotations><meta><task><labels><label><name>&lol3;</name></label></labels></task></meta>
</annotations>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><meta><task><labels><label><name>&xxe;</name></label></labels></task></meta>
</annotations>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE annotations SYSTEM "http://127.0.0.1:9/evil.dtd">
<annotations/>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["bomb", "xxe", "dtd"])
def test_unsafe_xml_is_refused(tmp_path, text):
    path = write_xml(tmp_path / "annotations.xml", text)
    with pytest.raises(DatasetError, match="not allowed") as err:
        parse(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_xml_names_line_and_column(tmp_path):
    text = task_xml(["a"], tag_image("x.jpg", "a")).replace("</image>", "</imag>")
    path = write_xml(tmp_path / "annotations.xml", text)
    with pytest.raises(DatasetError, match=r"malformed XML at line 5, column \d+") as err:
        parse(path)
    assert str(path) in str(err.value)


def test_wrong_root_and_empty_file(tmp_path):
    with pytest.raises(DatasetError, match="expected <annotations>"):
        parse(write_xml(tmp_path / "a.xml", "<coco><x/></coco>"))
    with pytest.raises(DatasetError, match="malformed XML at line 1"):
        parse(write_xml(tmp_path / "b.xml", ""))


def test_missing_annotations_file(tmp_path):
    with pytest.raises(DatasetError, match=r"annotations file '.*' not found"):
        parse(tmp_path / "nope.xml")


def _big_xml(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(task_xml(["a", "b"], "").replace("</annotations>\n", ""))
        for i in range(n):
            fh.write(
                f'<image id="{i}" name="img_{i:06d}.jpg" width="64" height="64">'
                f'<box label="a" xtl="1" ytl="2" xbr="30" ybr="40"/><tag label="b"/></image>\n'
            )
        fh.write("</annotations>\n")
    return path


def _peak_while_streaming(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    count = 0
    try:
        for kind, _value in cvat_dataset.iter_cvat_annotations(path):
            count += kind == "image"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_streaming_parse_memory_is_bounded(tmp_path):
    small = _peak_while_streaming(_big_xml(tmp_path / "small.xml", 5_000))
    big = _peak_while_streaming(_big_xml(tmp_path / "big.xml", 40_000))
    assert (small[0], big[0]) == (5_000, 40_000)
    # 8x the images, about the same peak: it depends on the 64 KiB feed size, not the file
    assert big[1] < 1.5 * small[1] + 100_000, (small, big)
    assert big[1] < (tmp_path / "big.xml").stat().st_size / 2


def test_progress_is_logged_not_drawn_without_a_tty(tmp_path, monkeypatch, caplog):
    path = _big_xml(tmp_path / "big.xml", 3_000)
    monkeypatch.setattr(cvat_dataset, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr(cvat_dataset, "PROGRESS_LOG_INTERVAL_S", 0.0)
    with caplog.at_level(logging.INFO, logger="cvat_dataset"):
        parse(path)
    assert "parsing big.xml" in caplog.text
    assert "\r" not in caplog.text


def test_progress_bar_on_a_tty(tmp_path, monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stderr = Tty()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.setattr(cvat_dataset, "PROGRESS_MIN_BYTES", 1)
    parse(_big_xml(tmp_path / "big.xml", 2_000))
    assert "parsing big.xml" in stderr.getvalue()  # drawn by tqdm
