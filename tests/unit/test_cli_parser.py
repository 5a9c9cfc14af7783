"""The console script's parser, its import hygiene, and `check` on a configuration without Kafka."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gkbroad.cli.commands import build_parser, host_port, main
from gkbroad.cli.connection import connection
from gkbroad.config.toml import ConfigProblems

COMMANDS = ["run", "check", "lag", "offsets", "produce", "broker"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_the_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gkbroad {command}")
    assert "exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage" in out


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    for argv in (["nope"], ["run"], ["produce", "--bootstrap-servers", "x", "--topic", "t"], ["offsets"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2, argv
    # Neither --bootstrap-servers nor --config: said after parsing (main() then exits 2, as for
    # every ConfigProblems; not called here, since it would patch this process for gevent first).
    with pytest.raises(ConfigProblems, match="--bootstrap-servers or --config is required"):
        connection(build_parser().parse_args(["lag", "--group", "g"]))
    with pytest.raises(SystemExit):
        main(["run", "x.toml", "--status", "8080"])
    assert "expected HOST:PORT such as 127.0.0.1:8080, got '8080'" in capsys.readouterr().err


def test_host_port():
    assert host_port("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert host_port("localhost:0") == ("localhost", 0)
    for bad in ("8080", ":80", "host:", "host:99999", "host:x"):
        with pytest.raises(Exception, match="expected HOST:PORT"):
            host_port(bad)


def test_the_parser_knows_every_command():
    parser = build_parser()
    assert parser.parse_args(["run", "c.toml", "--pipeline", "m:C", "--log-level", "debug"]).log_level == "DEBUG"
    args = parser.parse_args(["lag", "--bootstrap-servers", "h:1", "--group", "g", "--topic", "a", "--topic", "b"])
    assert args.topic == ["a", "b"]
    assert parser.parse_args(["produce", "--bootstrap-servers", "h:1", "--topic", "t", "data.txt"]).file == "data.txt"


def test_importing_the_console_script_imports_neither_kafka_nor_ssl_and_patching_is_clean():
    """The console script imports gkbroad.cli.commands before main() patches: nothing in that import may
    load kafka (it would keep the blocking selector) or ssl (gevent warns), and the patch must
    leave kafka-python usable under gevent."""
    code = textwrap.dedent(
        """\
        import sys, warnings
        import gkbroad.cli.commands
        early = sorted(m for m in sys.modules if m.split(".")[0] in ("kafka", "ssl"))
        assert not early, early
        from gevent.monkey import MonkeyPatchWarning
        warnings.simplefilter("error", MonkeyPatchWarning)
        gkbroad.cli.commands._patch_gevent()
        import gkbroad.kafka
        from gkbroad.kafka.client.gevent_check import check_gevent_patched
        check_gevent_patched()
        print("clean")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "clean\n"


def test_check_of_a_configuration_without_kafka(tmp_path):
    (tmp_path / "plain.py").write_text(
        "import gkbroad\n\n\nclass Plain(gkbroad.Pipeline):\n"
        "    def handle_message(self, processor, message, context):\n        return message\n"
    )
    config = tmp_path / "plain.toml"
    config.write_text(
        'pipeline = "plain:Plain"\nname = "plain"\n[producer]\nmodule = "gkbroad.testing:DummyProducer"\n'
    )

    def check(*args):
        return subprocess.run(
            [sys.executable, "-m", "gkbroad", "check", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = check("plain.toml")
    assert result.returncode == 2
    assert result.stderr == "processors: missing required option\n"
    config.write_text(config.read_text() + "[processors.default]\n")
    result = check("plain.toml")
    assert (result.returncode, result.stdout) == (0, "plain.toml: ok (pipeline 'plain', plain:Plain)\n")
    result = check("plain.toml", "--connect")
    assert result.returncode == 0
    assert "--connect: the producer DummyProducer is not gkbroad.kafka.Producer; nothing to connect to" in result.stdout


def test_a_librdkafka_file_is_translated_for_the_commands_or_refused_naming_what_kafka_python_lacks(tmp_path):
    def file_with(client):
        config = tmp_path / "rd.toml"
        config.write_text(
            'pipeline = "gkbroad:Pipeline"\nname = "rd"\n[producer]\nmodule = ["gkbroad.kafka.Producer", '
            f'{{ client = {{ {client} }}, client_library = "librdkafka", group_name = "g", topics = [{{ name = "t" }}] }}]\n'
        )
        return build_parser().parse_args(["lag", "--config", str(config)])

    sasl = '"bootstrap.servers" = "h:1", "sasl.mechanism" = "PLAIN", "sasl.username" = "u", "sasl.password" = "pw-1"'
    translated = connection(file_with(sasl))
    assert translated.client == {
        "bootstrap_servers": "h:1",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "pw-1",
    }
    assert translated.group == "g"
    oauth = '"bootstrap.servers" = "h:1", "sasl.mechanism" = "OAUTHBEARER", "sasl.oauthbearer.config" = "tok-1"'
    with pytest.raises(ConfigProblems) as refused:
        connection(file_with(oauth))
    (problem,) = refused.value.problems
    assert problem.endswith(
        "producer.module.client.sasl.oauthbearer.config: the command line connects with kafka-python, which has no "
        "counterpart for this librdkafka setting (see docs/cli.md, a pipeline on librdkafka)"
    )
    assert "tok-1" not in problem
