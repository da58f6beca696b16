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
