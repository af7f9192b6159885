"""core.proxy_http / core.proxy_https / core.proxy_ignore_hosts (corral/netproxy.py)."""
from corral.netproxy import proxy_for


def test_proxy_choice_and_ignore_list():
    cfg = {"core.proxy_https": "http://127.0.0.1:3128", "core.proxy_http": "127.0.0.1:8080",
           "core.proxy_ignore_hosts": "internal.example, .corp.example,10.0.0.0/8,[fd00::1]"}
    assert proxy_for(cfg, "https://images.example:8443") == "http://127.0.0.1:3128"
    assert proxy_for(cfg, "http://images.example") == "http://127.0.0.1:8080"
    assert proxy_for(cfg, "https://internal.example") is None
    assert proxy_for(cfg, "https://a.internal.example") is None
    assert proxy_for(cfg, "https://b.corp.example:1") is None
    assert proxy_for(cfg, "https://corp.example") is None
    assert proxy_for(cfg, "https://notcorp.example") == "http://127.0.0.1:3128"
    assert proxy_for(cfg, "https://10.1.2.3:8443") is None
    assert proxy_for(cfg, "https://11.1.2.3:8443") == "http://127.0.0.1:3128"
    assert proxy_for({**cfg, "core.proxy_ignore_hosts": "*"}, "https://x.example") is None
    assert proxy_for({}, "https://x.example") is None
