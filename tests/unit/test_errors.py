"""root_cause: a Spark error as one line, from the Java cause chain or the text."""

from __future__ import annotations

import pytest

from streamer.errors import ModelError, root_cause

PYTHON_WORKER_TRACEBACK = """[PYTHON_EXCEPTION] An exception was thrown from the Python \
worker: Traceback (most recent call last):
  File "/opt/pyspark/worker.py", line 3602, in main
    func, profiler, deserializer, serializer = read_udfs(
                                               ^^^^^^^^^^
  File "/opt/pyspark/serializers.py", line 12, in loads
    return cloudpickle.loads(obj)
ModuleNotFoundError: No module named 'streamer'
"""

DATA_SOURCE_TRACEBACK = """[PYTHON_DATA_SOURCE_ERROR] Failed to create Python data source \
instance: Traceback (most recent call last):
  File "/opt/pyspark/sql/worker/utils.py", line 98, in worker_run
    main(infile, outfile)
ModuleNotFoundError: No module named 'streamer' SQLSTATE: 38000"""


class FakeJava:
    """A py4j JavaObject for a Throwable: getCause, getClass().getSimpleName, getMessage."""

    def __init__(self, name: str, message: str | None, cause: FakeJava | None = None) -> None:
        self._name, self._message, self._cause = name, message, cause

    def getCause(self) -> FakeJava | None:
        return self._cause

    def getMessage(self) -> str | None:
        return self._message

    def getClass(self) -> FakeJava:
        return self

    def getSimpleName(self) -> str:
        return self._name


class Py4JJavaError(Exception):
    """Named like py4j's: root_cause reads ``java_exception``, else parses the text."""

    def __init__(self, text: str, java: object = None) -> None:
        super().__init__(text)
        self.java_exception = java


class GoneJava:
    def getCause(self):
        raise ConnectionError("gateway closed")


def test_the_innermost_java_cause_names_class_and_message():
    java = FakeJava(
        "SparkException",
        "Job aborted due to stage failure: ...",
        FakeJava("IOException", "Connection reset", FakeJava("EOFException", None)),
    )
    assert root_cause(Py4JJavaError("ignored", java)) == "EOFException"
    java = FakeJava(
        "SparkException",
        "[UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY] Don't support add file. The local directory "
        "file:/m/ is not supported in a non-local master mode. SQLSTATE: 0A000",
    )
    assert root_cause(Py4JJavaError("ignored", java)) == (
        "SparkException: [UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY] Don't support add file. The "
        "local directory file:/m/ is not supported in a non-local master mode."
    )


def test_a_wrapper_that_only_adds_context_to_the_same_message_is_kept():
    java = FakeJava(
        "AnalysisException",
        "planning failed",
        FakeJava(
            "IOException",
            'Cannot run program "./environment/bin/python": error=2, No such file or directory',
            FakeJava("IOException", "error=2, No such file or directory"),
        ),
    )
    assert root_cause(Py4JJavaError("ignored", java)) == (
        'IOException: Cannot run program "./environment/bin/python": error=2, No such file or '
        "directory"
    )


def test_a_python_worker_traceback_comes_down_to_its_exception_line():
    java = FakeJava(
        "SparkException",
        "Job aborted",
        FakeJava("PythonException", PYTHON_WORKER_TRACEBACK),
    )
    assert root_cause(Py4JJavaError("ignored", java)) == (
        "ModuleNotFoundError: No module named 'streamer'"
    )


def test_a_spark_condition_carrying_a_traceback_keeps_the_condition():
    java = FakeJava("AnalysisException", DATA_SOURCE_TRACEBACK)
    assert root_cause(Py4JJavaError("ignored", java)) == (
        "AnalysisException: [PYTHON_DATA_SOURCE_ERROR] Failed to create Python data source "
        "instance: ModuleNotFoundError: No module named 'streamer'"
    )


def test_a_wrapped_spark_error_is_followed_through_raise_from():
    java = FakeJava("FileNotFoundException", "File file:/x does not exist")
    try:
        try:
            raise Py4JJavaError("ignored", java)
        except Py4JJavaError as exc:
            raise ModelError("cannot ship") from exc
    except ModelError as wrapped:
        assert root_cause(wrapped) == "FileNotFoundException: File file:/x does not exist"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "An error occurred while calling o34.addFile.\n"
            ": org.apache.spark.SparkException: [UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY] The "
            "local directory file:/m/ is not supported in a non-local master mode. SQLSTATE: "
            "0A000\n\tat org.apache.spark.SparkContext.addFile(SparkContext.scala:1)\n",
            "SparkException: [UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY] The local directory "
            "file:/m/ is not supported in a non-local master mode.",
        ),
        (
            "An error occurred while calling o9.start.\n"
            ": org.apache.spark.SparkException: Job aborted\n"
            "\tat org.apache.spark.scheduler.DAGScheduler.x(DAGScheduler.scala:1)\n"
            "Caused by: org.apache.spark.api.python.PythonException: "
            + PYTHON_WORKER_TRACEBACK
            + "\tat org.apache.spark.api.python.BasePythonRunner.x(PythonRunner.scala:1)\n",
            "ModuleNotFoundError: No module named 'streamer'",
        ),
    ],
    ids=["first-throwable", "last-caused-by"],
)
def test_without_a_jvm_the_stack_trace_text_is_read(text, expected):
    assert root_cause(Py4JJavaError(text, GoneJava())) == expected


def test_a_captured_exception_without_a_jvm_uses_its_description():
    class PythonException(Exception):
        _origin = None
        _desc = (
            "\n  An exception was thrown from the Python worker. Please see the stack trace "
            'below.\nTraceback (most recent call last):\n  File "<udf>", line 2, in f\n'
            "ValueError: bad value\nsecond line of the message\n"
        )

    assert root_cause(PythonException()) == "ValueError: bad value"


def test_a_plain_exception_is_its_class_and_first_line():
    assert root_cause(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert root_cause(KeyError()) == "KeyError"
