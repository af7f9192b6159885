import pytest

from corral import config
from corral.config.keys import parse_size
from corral.errors import BadRequest


def test_server_keys_validate_and_stringify():
    assert config.validate(config.SERVER, {"core.shutdown_timeout": 2}) == {"core.shutdown_timeout": "2"}
    assert config.value(config.SERVER, {}, "core.shutdown_timeout") == 5
    assert config.value(config.SERVER, {"core.shutdown_timeout": "1"}, "core.shutdown_timeout") == 1


@pytest.mark.parametrize("cfg, word", [
    ({"nope": "1"}, "nope"),
    ({"core.shutdown_timeout": "-1"}, "core.shutdown_timeout"),
    ({"images.auto_update_cached": "maybe"}, "images.auto_update_cached"),
    ({"core.https_address": "not an address!"}, "core.https_address"),
    ({"images.compression_algorithm": "rar"}, "images.compression_algorithm"),
])
def test_bad_server_config_names_the_key(cfg, word):
    with pytest.raises(BadRequest) as e:
        config.validate(config.SERVER, cfg)
    assert word in e.value.message and e.value.status == 400


def test_instance_pattern_keys():
    ok = config.validate(config.INSTANCE, {"user.anything": "x", "environment.FOO": "1", "limits.cpu": "0-1,3"})
    assert ok["user.anything"] == "x"
    for bad in ({"user.": "x"}, {"limits.cpu": "0"}, {"limits.memory": "12 parsecs"}, {"security.privileged": "2"}):
        with pytest.raises(BadRequest):
            config.validate(config.INSTANCE, bad)


def test_sizes():
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("1GB") == 10**9
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError):
        parse_size("1 furlong")
