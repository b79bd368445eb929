import subprocess
import sys

import boto3

from trainkit.cli import main


def test_help_lists_every_available_command(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "trainkit" in out


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "trainkit", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_moto_fixture_serves_s3(moto):
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="probe")
    s3.put_object(Bucket="probe", Key="a/b.txt", Body=b"x")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="probe")["Contents"]]
    assert keys == ["a/b.txt"]
    assert any("list-type=2" in line for line in moto.requests_seen())
