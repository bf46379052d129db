"""The ``streamer`` command's table: every subcommand has a handler, and ``--config`` falls
back to ``STREAMER_CONFIG`` everywhere, ``deploy emr`` included."""

from __future__ import annotations

import pytest

from streamer import cli

ARGV = {
    "run": ["run"],
    "offsets": ["offsets", "show"],
    "deploy": ["deploy", "emr", "status"],
    "demo": ["demo"],
    "train": ["train"],
    "produce": ["produce"],
    "compare": ["compare"],
    "broker": ["broker"],
}


def test_the_table_names_every_subcommand_once():
    parser = cli._parser({})
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    assert list(commands.choices) == list(ARGV)


@pytest.mark.parametrize("name", list(ARGV))
def test_every_subcommand_has_a_handler(name):
    args = cli._parser({}).parse_args(ARGV[name])
    assert args.command == name
    assert callable(args.handler)


GIVEN = {
    "run": ["run", "--config", "given.yaml"],
    "offsets": ["offsets", "--config", "given.yaml", "show"],
    "deploy": ["deploy", "emr", "status", "--config", "given.yaml"],
    "compare": ["compare", "--config", "given.yaml"],
}


@pytest.mark.parametrize("name", list(GIVEN))
def test_config_comes_from_streamer_config_unless_given(name):
    parser = cli._parser({"STREAMER_CONFIG": "from-env.yaml"})
    assert parser.parse_args(ARGV[name]).config == "from-env.yaml"
    assert parser.parse_args(GIVEN[name]).config == "given.yaml"


def test_deploy_emr_keeps_its_default_config_without_the_variable():
    assert cli._parser({}).parse_args(ARGV["deploy"]).config == "conf/emr.yaml"
