"""Projects without features.profiles use the default project's profiles (pylxd's integration suite
creates one), and GET /1.0 echoes the requested project; each checked against the real LXD 5.0.2."""
from helpers import unique


def test_project_without_own_profiles(daemon):
    name = unique("np")
    r = daemon.request("POST", "/1.0/projects", {"name": name, "description": "d",
                                                 "config": {"features.images": "true", "features.profiles": "false"}})
    assert r.status == 201, r.body
    try:
        p = daemon.get(f"/1.0/projects/{name}").metadata
        assert p["config"]["features.profiles"] == "false" and p["config"]["features.images"] == "true"
        assert p["used_by"] == []   # no default profile of its own
        # its profiles are the default project's, named as such
        assert "/1.0/profiles/default" in daemon.get(f"/1.0/profiles?project={name}").metadata
        own = unique("pp")
        assert daemon.request("POST", f"/1.0/profiles?project={name}", {"name": own}).status == 201
        assert f"/1.0/profiles/{own}" in daemon.get("/1.0/profiles").metadata   # made in default
        assert daemon.request("DELETE", f"/1.0/profiles/{own}").status == 200
        # turned on (the project is empty): it gets its own default profile; off again: gone
        assert daemon.request("PATCH", f"/1.0/projects/{name}", {"config": {"features.profiles": "true"}}).status == 200
        assert daemon.get(f"/1.0/profiles?project={name}").metadata == [f"/1.0/profiles/default?project={name}"]
        assert daemon.request("PATCH", f"/1.0/projects/{name}", {"config": {"features.profiles": "false"}}).status == 200
        assert daemon.get(f"/1.0/projects/{name}").metadata["used_by"] == []
        assert "/1.0/profiles/default" in daemon.get(f"/1.0/profiles?project={name}").metadata
    finally:
        assert daemon.request("DELETE", f"/1.0/projects/{name}").status == 200


def test_default_project_keeps_its_profiles(daemon):
    r = daemon.request("PATCH", "/1.0/projects/default", {"config": {"features.profiles": "false"}})
    assert r.status == 400 and r.json["error"] == "You can't change the features of the default project"
    assert daemon.get("/1.0/projects/default").metadata["config"]["features.profiles"] == "true"


def test_server_environment_echoes_requested_project(daemon):
    assert daemon.get("/1.0").metadata["environment"]["project"] == "default"
    assert daemon.get("/1.0?project=test-project").metadata["environment"]["project"] == "test-project"


def test_instance_in_project_without_own_profiles(host):
    """Its instances expand the default project's profiles and count as their users."""
    name, c = unique("ni"), unique("nc")
    r = host.request("POST", "/1.0/projects", {"name": name, "config": {"features.profiles": "false",
                                                                         "features.images": "false"}})
    assert r.status == 201, r.body
    try:
        host.lxc("launch", "busybox", c, "--project", name)
        inst = host.get(f"/1.0/instances/{c}?project={name}").metadata
        assert inst["profiles"] == ["default"] and inst["expanded_devices"]["root"]["pool"] == "default"
        assert f"/1.0/instances/{c}?project={name}" in host.get("/1.0/profiles/default").metadata["used_by"]
        r = host.request("PUT", f"/1.0/instances/{c}?project={name}",
                         {"config": {}, "devices": {}, "profiles": ["default"], "description": "x"})
        assert r.status in (200, 202), r.body
    finally:
        host.lxc("delete", "-f", c, "--project", name, check=False)
        assert host.request("DELETE", f"/1.0/projects/{name}").status == 200
