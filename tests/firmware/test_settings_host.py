"""The literals of test_settings_stage.py are the tool's: the document as
tools.field.provision encodes it, and its digests (the stage/commit itself runs on both
interpreters there)."""
from firmware.runtime.settings import digest
from tests.firmware.test_settings_stage import BROKER_DIGEST, CA, DIGEST, HEX, VALUES
from tools.field.provision import encode, settings_document

ON_MICROPYTHON = False  # the provisioning tool is host code


def test_the_document_is_the_one_the_tool_sends():
    doc = settings_document("box-7", "mqtt.example", 8883, "box-7.2", "pw\\\"'; =é€🙂x",
                            ("Box \"Maison\" \\ é", "a\\b\"c'd e;f=gé€🙂"), ca=CA)
    assert doc == VALUES
    assert encode(doc) == HEX
    assert (digest(doc), digest(doc, ("user", "pass"))) == (DIGEST, BROKER_DIGEST)


def test_several_brokers_go_in_the_document_and_the_box_reads_them():
    from firmware.runtime.settings import check

    nodes = [("10.0.0.1", 1883), ("10.0.0.2", 1883), ("10.0.0.3", 1884)]
    doc = settings_document("box-7", *nodes[0], "box-7", "pw", None, brokers=nodes)
    assert (doc["host"], doc["port"]) == nodes[0]
    assert check("brokers", doc["brokers"]) == [list(n) for n in nodes]
    one = settings_document("box-7", *nodes[0], "box-7", "pw", None, brokers=nodes[:1])
    assert "brokers" not in one  # one address: host and port, as before
