import io
import json
import logging

from streamer.logs import configure_logging


def _emit(fmt: str, message: str, *args) -> str:
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream=stream)
    logging.getLogger("streamer.test").info(message, *args)
    return stream.getvalue()


def test_json_lines_carry_key_value_pairs_as_fields():
    line = _emit("json", 'batch done batch_id="%d" rows="%d"', 7, 100)
    body = json.loads(line)
    assert body["msg"] == 'batch done batch_id="7" rows="100"'
    assert body["batch_id"] == "7" and body["rows"] == "100"
    assert body["level"] == "INFO" and body["logger"] == "streamer.test"
    assert body["ts"].endswith("Z")


def test_text_format_keeps_the_message():
    line = _emit("text", 'stopped outputs="%d"', 5)
    assert line.rstrip().endswith('INFO streamer.test: stopped outputs="5"')


def test_auto_is_json_when_not_a_tty():
    json.loads(_emit("auto", "hello"))


def test_configuring_twice_does_not_duplicate_lines():
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    configure_logging("INFO", "text", stream=stream)
    logging.getLogger("streamer.test").info("once")
    assert stream.getvalue().count("once") == 1


def test_secret_pairs_are_masked():
    line = _emit("json", 'connecting sasl.password="%s" user="%s"', "hunter2", "alice")
    assert "hunter2" not in line
    assert json.loads(line)["sasl.password"] == "***"
