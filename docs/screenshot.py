"""Regenerate docs/web-page.png, the README's screenshot of the web page.

    python docs/screenshot.py --data ../shared/data/ml-latest-small --cache-dir CACHE

Starts ``tastelens api`` on the data (the item index must be built in CACHE first:
``tastelens --cache-dir CACHE index build --data ...``), with data-facts profiles, retrieval
order and template explanations and no LLM server (so it runs in a minute on a laptop CPU),
drives headless Chromium (Debian's ``chromium`` + ``chromium-driver``) at a phone's width:
one chat message and the user's profile, then puts the two screens side by side in one
small PNG.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

SETTINGS = """\
[embedder]
model = "all-MiniLM-L6-v2"
[llm]
backend = "openai"
base_url = "http://127.0.0.1:{port}/v1"
[recommend]
profile_source = "facts"
[recommend.rerank]
mode = "none"
[recommend.collaborative]
enabled = false
[api]
open_user_data = true  # a one-person run on loopback: no user token to type in
"""
WIDTH, HEIGHT = 390, 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def capture(driver: webdriver.Chrome, path: Path) -> Image.Image:
    driver.save_screenshot(str(path))
    return Image.open(path).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--user", default="1")
    parser.add_argument("--message", default="something like Heat but funnier")
    parser.add_argument("--out", default=str(Path(__file__).with_name("web-page.png")))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tastelens-shot-"))
    (work / "tastelens.toml").write_text(SETTINGS.format(port=free_port()))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("tastelens")), "--cache-dir", args.cache_dir, "api",
         "--port", str(port), "--data", args.data], cwd=work, env=env)
    base = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars"):
        options.add_argument(arg)
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=2).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        driver = webdriver.Chrome(options=options,
                                  service=Service(executable_path="/usr/bin/chromedriver"))
        wait = WebDriverWait(driver, 120)
        try:
            driver.get(f"{base}/?user={args.user}")
            driver.find_element(By.ID, "message").send_keys(args.message, Keys.ENTER)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))
            chat = capture(driver, work / "chat.png")
            driver.find_element(By.ID, "tab-profile").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#drift svg"))
            profile = capture(driver, work / "profile.png")
            drift = driver.find_element(By.ID, "drift")
            driver.execute_script("arguments[0].scrollIntoView()", drift)
            chart = capture(driver, work / "drift.png")
        finally:
            driver.quit()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    gap = 12
    sheet = Image.new("RGB", (3 * chat.width + 2 * gap, chat.height), "white")
    for i, shot in enumerate((chat, profile, chart)):
        sheet.paste(shot, (i * (chat.width + gap), 0))
    scale = 0.6
    sheet = sheet.resize((int(sheet.width * scale), int(sheet.height * scale)), Image.LANCZOS)
    sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
