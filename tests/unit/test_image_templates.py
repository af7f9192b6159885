"""corral.image.templates: LXD template triggers, create_only, the pongo2-style context and
syntax, and that target paths never leave the rootfs."""
import os
import stat

import pytest
import yaml

from corral.image.templates import TemplateError, render_templates, translate

IS_ROOT = os.geteuid() == 0

CONTEXT = {
    "instance": {"name": "c1", "architecture": "x86_64", "privileged": False, "ephemeral": True},
    "config": {"user.user-data": "#cloud-config\nhostname: c1\n\r\n", "limits.cpu": "2"},
    "devices": {"eth0": {"type": "nic", "network": "lxdbr0"}},
}


def make_image(tmp_path, templates, files):
    meta = tmp_path / "image"
    (meta / "templates").mkdir(parents=True)
    doc = {"architecture": "x86_64", "creation_date": 1, "templates": templates}
    (meta / "metadata.yaml").write_text(yaml.safe_dump(doc))
    for name, text in files.items():
        (meta / "templates" / name).write_text(text)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    return str(meta), rootfs


def tpl(name, when, create_only=False, **properties):
    return {"template": name, "when": when, "create_only": create_only, "properties": properties}


@pytest.fixture
def image(tmp_path):
    return make_image(tmp_path, {
        "/etc/hostname": tpl("hostname.tpl", ["create", "copy"]),
        "/etc/hosts": tpl("hosts.tpl", ["create"], create_only=True),
        "/var/lib/cloud/seed/nocloud-net/user-data": tpl(
            "cloud-init-user.tpl", ["create", "copy", "start"], default="#cloud-config\n{}\n"),
        "/etc/trigger": tpl("trigger.tpl", ["start"]),
    }, {
        "hostname.tpl": "{{ container.name }}\n",
        "hosts.tpl": "127.0.1.1\t{{ instance.name }}\n",
        "cloud-init-user.tpl": '{{ config_get("user.user-data", properties.default) }}',
        "trigger.tpl": "{{ trigger }} {{ path }} {{ instance.type }} {{ instance.privileged }} "
                       "{{ instance.ephemeral }} {{ config['limits.cpu'] }} {{ devices.eth0.network }}\n",
    })


def test_create_trigger(image):
    meta, rootfs = image
    written = render_templates(meta, str(rootfs), "create", CONTEXT)
    assert written == ["/etc/hostname", "/etc/hosts", "/var/lib/cloud/seed/nocloud-net/user-data"]
    hostname = rootfs / "etc/hostname"
    assert hostname.read_text() == "c1\n"
    assert (rootfs / "etc/hosts").read_text() == "127.0.1.1\tc1\n"
    # config_get strips trailing newlines/CRs like LXD.
    assert (rootfs / "var/lib/cloud/seed/nocloud-net/user-data").read_text() == "#cloud-config\nhostname: c1"
    st = hostname.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert stat.S_IMODE((rootfs / "var/lib/cloud").stat().st_mode) == 0o755
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert not (rootfs / "etc/trigger").exists()


def test_copy_and_start_triggers(image):
    meta, rootfs = image
    assert render_templates(meta, str(rootfs), "copy", {"instance": {"name": "c2"}}) == [
        "/etc/hostname", "/var/lib/cloud/seed/nocloud-net/user-data"]
    assert (rootfs / "etc/hostname").read_text() == "c2\n"
    # No config: config_get falls back to the template property.
    assert (rootfs / "var/lib/cloud/seed/nocloud-net/user-data").read_text() == "#cloud-config\n{}\n"
    assert not (rootfs / "etc/hosts").exists()

    assert render_templates(meta, str(rootfs), "start", CONTEXT) == [
        "/etc/trigger", "/var/lib/cloud/seed/nocloud-net/user-data"]
    assert (rootfs / "etc/trigger").read_text() == "start /etc/trigger container false true 2 lxdbr0\n"
    assert (rootfs / "etc/hostname").read_text() == "c2\n"
    assert render_templates(meta, str(rootfs), "rename", CONTEXT) == []


def test_create_only_and_existing_files(image):
    meta, rootfs = image
    (rootfs / "etc").mkdir()
    (rootfs / "etc/hosts").write_text("mine\n")
    (rootfs / "etc/hostname").write_text("old-name-that-is-long\n")
    os.chmod(rootfs / "etc/hostname", 0o600)
    written = render_templates(meta, str(rootfs), "create", CONTEXT)
    assert "/etc/hosts" not in written
    assert (rootfs / "etc/hosts").read_text() == "mine\n"
    # Existing non create_only targets are truncated and rewritten, keeping their mode.
    assert (rootfs / "etc/hostname").read_text() == "c1\n"
    assert stat.S_IMODE((rootfs / "etc/hostname").stat().st_mode) == 0o600


def test_pongo2_syntax(tmp_path):
    meta, rootfs = make_image(tmp_path, {"/out": tpl("t.tpl", ["start"], default="dflt", items="it")}, {"t.tpl": (
        '{{ properties.items }}{{ missing|default:"none" }} {{ ""|default:properties.default }} {{ "abc"|capfirst }} '
        '{{ instance.name|upper }} {{ "a-b"|cut:"-" }}\n'
        '{% if instance.name == "c1" && !instance.nothing %}yes{% else %}no{% endif %}'
        '{% if false || true %} or{% endif %}\n'
        '{% for x in config.nothing %}{{ x }}{% empty %}empty{% endfor %}\n'
        '{% autoescape off %}<{{ "&" }}>{% endautoescape %}\n'
        '{{ config_get("absent", "fallback") }} {{ config_get("absent") }}|{{ missing.deep.chain }}|\n'
        "{{ ''.__class__.__mro__ }}|{% include 'inc.tpl' %}")})
    (tmp_path / "image/templates/inc.tpl").write_text("included {{ instance.architecture }}\n")
    render_templates(meta, str(rootfs), "start", CONTEXT)
    assert (rootfs / "out").read_text() == (
        "itnone dflt Abc C1 ab\nyes or\nempty\n<&>\nfallback ||\n|included x86_64\n")


def test_translate_leaves_strings_alone():
    assert translate('{{ "a && b || !c|x:y" }} && ||') == '{{ "a && b || !c|x:y" }} && ||'
    assert translate("{% if a != b && !c %}") == "{% if a != b  and   not c %}"
    assert translate('{{ v|default:"x" }}') == '{{ v|default("x") }}'


def test_symlink_out_of_rootfs_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    meta, rootfs = make_image(tmp_path, {"/etc/hostname": tpl("h.tpl", ["create"])}, {"h.tpl": "pwned\n"})
    os.symlink("../outside", rootfs / "etc")  # relative: climbs out of the rootfs
    with pytest.raises(TemplateError, match="outside the instance rootfs"):
        render_templates(meta, str(rootfs), "create", CONTEXT)
    assert os.listdir(outside) == []


def test_absolute_symlinks_resolve_inside_rootfs(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    meta, rootfs = make_image(tmp_path, {
        "/etc/hostname": tpl("h.tpl", ["create"]),
        "/a/file": tpl("h.tpl", ["create"]),
    }, {"h.tpl": "name\n"})
    # /etc/hostname -> /run/hostname, and /a -> <host path of outside>: both container paths.
    (rootfs / "etc").mkdir()
    os.symlink("/run/hostname", rootfs / "etc/hostname")
    os.symlink(str(outside), rootfs / "a")
    render_templates(meta, str(rootfs), "create", CONTEXT)
    assert (rootfs / "run/hostname").read_text() == "name\n"
    assert (rootfs / str(outside).lstrip("/") / "file").read_text() == "name\n"
    assert os.listdir(outside) == []


def test_refusals(tmp_path):
    meta, rootfs = make_image(tmp_path, {
        "/loop": tpl("h.tpl", ["loop"]),
        "/dir": tpl("h.tpl", ["dir"]),
        "/../../escape": tpl("h.tpl", ["dotdot"]),
        "/x": tpl("missing.tpl", ["missing"]),
        "/y": tpl("evil.tpl", ["evil-tpl"]),
        "/z": tpl("broken.tpl", ["broken"]),
        "/w": tpl("inc.tpl", ["include"]),
    }, {"h.tpl": "x", "broken.tpl": "{% if %}", "inc.tpl": "{% include '../metadata.yaml' %}"})
    os.symlink("loop", rootfs / "loop")
    (rootfs / "dir").mkdir()
    os.symlink("/etc/passwd", tmp_path / "image/templates/evil.tpl")
    for trigger in ["loop", "dir", "dotdot", "missing", "evil-tpl", "broken", "include"]:
        with pytest.raises(TemplateError):
            render_templates(meta, str(rootfs), trigger, CONTEXT)
    assert not (tmp_path.parent / "escape").exists()
    assert not (rootfs / "z").exists() and not (rootfs / "y").exists()


def test_render_error_keeps_existing_file(tmp_path):
    meta, rootfs = make_image(tmp_path, {"/f": tpl("b.tpl", ["start"])}, {"b.tpl": "{{ 1/0 }}"})
    (rootfs / "f").write_text("keep")
    with pytest.raises(TemplateError):
        render_templates(meta, str(rootfs), "start", CONTEXT)
    assert (rootfs / "f").read_text() == "keep"


def test_no_metadata(tmp_path):
    (tmp_path / "rootfs").mkdir()
    assert render_templates(str(tmp_path), str(tmp_path / "rootfs"), "create", CONTEXT) == []
    (tmp_path / "metadata.yaml").write_text("architecture: x86_64\n")  # no templates: nothing to do
    assert render_templates(str(tmp_path), str(tmp_path / "rootfs"), "create", CONTEXT) == []
    (tmp_path / "metadata.yaml").write_text("templates: [1]\n")
    with pytest.raises(TemplateError):
        render_templates(str(tmp_path), str(tmp_path / "rootfs"), "create", CONTEXT)
