"""``python -m textclf.screenshot``: the README's picture of the playground, made for real.

Starts ``textclf serve`` with the packaged model (``make demo``'s), opens ``GET /`` in Debian's
headless chromium, types a headline, waits for the explanation and saves a PNG.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from textclf import browser, config
from textclf.errors import UserError
from textclf.serving.net import bind_socket

HEADLINE = "Ebola outbreak spreads in West Africa, WHO says"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/playground.png"))
    parser.add_argument("--headline", default=HEADLINE)
    args = parser.parse_args(argv)
    reason = browser.missing()
    if reason:
        raise SystemExit(f"{reason}: run `make browser`")
    key = secrets.token_urlsafe(16)
    env = {**os.environ, "TEXTCLF_API_KEY": key}
    # Listening sockets bound here on ports the OS picks and inherited by the stack (--fd, as the
    # integration tests start it): no window in which another process could take a port.
    api = bind_socket("127.0.0.1", 0, what="API", flag="--fd")
    endpoint = bind_socket("127.0.0.1", 0, what="endpoint", flag="--endpoint-fd")
    command = [sys.executable, "-m", "textclf", "serve", "--fd", str(api.fileno())]
    command += ["--endpoint-fd", str(endpoint.fileno())]
    # The packaged model, not what an earlier `make serve` deployed (whose state is left alone).
    command += ["--state-dir", str(config.artifacts_dir() / "local-stack" / "screenshot-state"), "--fresh"]
    with api, endpoint:
        server = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            pass_fds=[api.fileno(), endpoint.fileno()],
        )
        url = f"http://127.0.0.1:{api.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                raise UserError(
                    "`textclf serve` stopped; run `make demo` first (it needs the packaged model)"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise UserError("the local stack did not become healthy in 300 s")
            time.sleep(1)
        shoot(url, key, args.headline, args.out)
    finally:
        server.terminate()
        server.wait(60)
    print(f"wrote {args.out}")
    return 0


def shoot(url: str, key: str, headline: str, out: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.chromium(1000, 1200)
    try:
        driver.get(url + "/")
        driver.find_element("id", "key").send_keys(key)
        driver.find_element("id", "headline").send_keys(headline)
        driver.find_element("id", "classify").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element("id", "result").is_displayed())
        # The whole page, not the window: chromium's own full-page capture.
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
