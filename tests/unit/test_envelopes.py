import json

from corral.api import response
from corral.api.request import _check_depth
from corral.errors import BadRequest


def test_sync_error_shapes():
    r = response.sync(["/1.0"])
    assert json.loads(r.body) == {"type": "sync", "status": "Success", "status_code": 200, "operation": "",
                                  "error_code": 0, "error": "", "metadata": ["/1.0"]}
    assert r.content_type == "application/json"
    e = response.error(404, "not found")
    assert json.loads(e.body) == {"type": "error", "status": "", "status_code": 0, "operation": "",
                                  "error_code": 404, "error": "not found", "metadata": None}
    assert e.status == 404 and e.headers["X-Content-Type-Options"] == "nosniff"


def test_etag_stable_and_sensitive():
    assert response.etag_of({"a": 1, "b": 2}) == response.etag_of({"b": 2, "a": 1})
    assert response.etag_of({"a": 1}) != response.etag_of({"a": 2})


def test_depth_limit_ignores_brackets_in_strings():
    _check_depth('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
    try:
        _check_depth("[" * 100)
        raise AssertionError("deep JSON accepted")
    except BadRequest:
        pass
