"""Headless Chromium for the web UI tests and bench, logged in with a TLS client certificate.

Chromium on Linux reads client certificates from the NSS database in $HOME/.pki/nssdb: the certificate
(made here, as PKCS#12) is imported there with pk12util in a throwaway HOME, and the policy
AutoSelectCertificateForUrls (a JSON file in /etc/chromium/policies/managed/, named after this browser
and removed with it) makes Chromium present it to https://127.0.0.1:PORT without asking. corrald's
server certificate is self-signed (clients pin it, as `lxc remote add` does): the browser is started
with --ignore-certificate-errors (it only ever talks to the test's own corrald).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

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
        self.base = f"https://{host}:{port}"
        self.home = tempfile.mkdtemp(prefix="corral-ui-home-")
        self.policy = os.path.join(POLICY_DIR, f"corral-ui-test-{os.path.basename(self.home)}.json")
        self.driver = None
        try:
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
            for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      f"--user-data-dir={self.home}/profile", "--ignore-certificate-errors", "--no-first-run",
                      f"--window-size={width},{height}", "--disable-extensions", "--disable-background-networking"):
                opts.add_argument(a)
            opts.binary_location = CHROMIUM
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
        if os.path.exists(self.policy):
            os.unlink(self.policy)
        shutil.rmtree(self.home, ignore_errors=True)


def cert_b64(cert: ClientCert) -> str:
    with open(cert.crt) as f:
        pem = f.read()
    import ssl
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(pem)).decode()
