"""Headless Chromium for the web UI tests and bench, logged in with a TLS client certificate.

Chromium on Linux reads client certificates from the NSS database in $HOME/.pki/nssdb: the certificate
(made here, as PKCS#12) is imported there with pk12util in a throwaway HOME, and the policy
AutoSelectCertificateForUrls (a JSON file in /etc/chromium/policies/managed/, named after this browser
and removed with it) makes Chromium present it to https://127.0.0.1:PORT without asking. corrald's
server certificate is self-signed (clients pin it, as `lxc remote add` does): the browser is started
with --ignore-certificate-errors (it only ever talks to the test's own corrald).

Chromium aborts its requests with ERR_NETWORK_CHANGED whenever an interface or address of its network
namespace changes, and on this host other tests make bridges and veths all the time. So the browser
runs in a network namespace of its own (only `lo`), where nothing changes: chromedriver (in the host's
namespace) drives it over --remote-debugging-pipe, and a relay (`Relay`) listening on the namespace's
127.0.0.1 carries its TCP connections to corrald (TLS end to end: corrald sees the relay's address and
the browser's client certificate).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

from corral.pki import certs

POLICY_DIR = "/etc/chromium/policies/managed"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "ui-screenshots")


class ClientCert:
    def __init__(self, directory: str, name: str):
        crt, key = certs.generate(name)
        self.crt, self.key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
        self.p12 = os.path.join(directory, f"{name}.p12")
        with open(self.crt, "wb") as f:
            f.write(crt)
        with open(self.key, "wb") as f:
            f.write(key)
        self.fingerprint = certs.fingerprint(crt)
        self.password = ""
        subprocess.run(["openssl", "pkcs12", "-export", "-inkey", self.key, "-in", self.crt, "-out", self.p12,
                        "-passout", "pass:", "-name", name], check=True, capture_output=True)


class Relay:
    """Listens on 127.0.0.1:`port` inside network namespace `ns` and connects each client to
    (`host`, `target_port`) from the host's namespace, copying bytes both ways."""

    def __init__(self, ns: str, port: int, host: str, target_port: int):
        self.target = (host, target_port)
        self.sock = None
        self._conns: list[socket.socket] = []
        made: list = []

        def bind_inside():   # a thread of its own enters the namespace only to make the socket
            try:
                with open(f"/var/run/netns/{ns}") as f:
                    os.setns(f.fileno(), os.CLONE_NEWNET)
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(64)
                made.append(s)
            except BaseException as e:
                made.append(e)

        t = threading.Thread(target=bind_inside)
        t.start()
        t.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        self.sock = made[0]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        for c in self._conns:
            c.close()


class Pkcs12:
    """A PKCS#12 file made elsewhere (the UI's own generator) for a Browser."""

    def __init__(self, path: str, password: str):
        self.p12, self.password = path, password


class Browser:
    """A headless Chromium (Selenium) whose NSS db holds `cert` (anything with .p12 and .password; None:
    a browser with no certificate)."""

    def __init__(self, port: int, cert: ClientCert | None, width: int = 1400, height: int = 900,
                 host: str = "127.0.0.1"):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.port = port
        self.base = f"https://127.0.0.1:{port}"   # in the browser's namespace: the relay to host:port
        self.home = tempfile.mkdtemp(prefix="corral-ui-home-")
        self.policy = os.path.join(POLICY_DIR, f"corral-ui-test-{os.path.basename(self.home)}.json")
        self.driver = None
        self.relay = None
        self.ns = f"cuib{uuid.uuid4().hex[:8]}"
        self.ns_made = False
        try:
            subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
            self.ns_made = True
            subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True, capture_output=True)
            self.relay = Relay(self.ns, port, host, port)
            wrapper = os.path.join(self.home, "chromium-in-netns")
            with open(wrapper, "w") as f:
                f.write(f"#!/bin/sh\nexec ip netns exec {self.ns} {CHROMIUM} \"$@\"\n")
            os.chmod(wrapper, 0o755)
            nssdb = os.path.join(self.home, ".pki", "nssdb")
            os.makedirs(nssdb)
            subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, capture_output=True)
            if cert is not None:
                subprocess.run(["pk12util", "-i", cert.p12, "-d", f"sql:{nssdb}", "-W", cert.password], check=True,
                               capture_output=True)
                os.makedirs(POLICY_DIR, exist_ok=True)
                with open(self.policy, "w") as f:
                    json.dump({"AutoSelectCertificateForUrls": [
                        json.dumps({"pattern": self.base, "filter": {}})]}, f)
            opts = webdriver.ChromeOptions()
            for a in ("--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      f"--user-data-dir={self.home}/profile", "--ignore-certificate-errors", "--no-first-run",
                      f"--window-size={width},{height}", "--disable-extensions", "--disable-background-networking"):
                opts.add_argument(a)
            opts.binary_location = wrapper
            opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
            service = Service(CHROMEDRIVER, env=dict(os.environ, HOME=self.home))
            self.driver = webdriver.Chrome(options=opts, service=service)
            self.driver.set_script_timeout(60)
        except BaseException:
            self.close()
            raise

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait(self, css: str, timeout: float = 30):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def until(self, pred, timeout: float = 30, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                v = pred()
                if v:
                    return v
            except Exception as e:   # an element replaced while we read it: try again
                last = e
            time.sleep(0.1)
        raise AssertionError(f"{what} not met in {timeout}s (last error: {last}); page: "
                             f"{self.driver.find_element('tag name', 'body').text[:2000]}")

    def css(self, sel: str):
        return self.driver.find_element("css selector", sel)

    def all(self, sel: str):
        return self.driver.find_elements("css selector", sel)

    def page(self, hash_: str, ready: str = "[data-ready]", timeout: float = 30):
        """Go to #/hash and wait for the page to say it has drawn."""
        # the page drawn now is marked: the one to wait for is the next
        self.driver.execute_script("const p = document.querySelector('#page > .page'); if (p) p.dataset.stale = '1';"
                                   "if (location.hash === arguments[0]) window.dispatchEvent(new HashChangeEvent('hashchange'));"
                                   "else location.hash = arguments[0]", hash_)
        self.until(lambda: self.driver.execute_script(
            "const p = document.querySelector('#page > .page'); return p && !p.dataset.stale && p.matches(arguments[0]) "
            "&& location.hash === arguments[1]", ready, hash_), timeout, f"page {hash_}")

    def notices(self) -> list[str]:
        return [n.text for n in self.all("#notices .notice.error")]

    def screenshot(self, name: str) -> str:
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, f"{name}.png")
        self.driver.save_screenshot(path)
        return path

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:
                pass
            self.driver = None
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self.ns_made:
            for pid in subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout.split():
                try:
                    os.kill(int(pid), 9)   # a browser process chromedriver did not end
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            self.ns_made = False
        if os.path.exists(self.policy):
            os.unlink(self.policy)
        shutil.rmtree(self.home, ignore_errors=True)


def cert_b64(cert: ClientCert) -> str:
    with open(cert.crt) as f:
        pem = f.read()
    import ssl
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(pem)).decode()
