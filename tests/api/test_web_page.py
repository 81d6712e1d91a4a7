"""The web page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium) against a real ``tastelens api`` process over
loopback, with the real pipeline (Chroma index, retriever, explainer, profile store, chat
agent) on the themed catalog of ``tests/webdata.py`` written as a MovieLens folder.

Most tests run without an LLM server, on purpose: they should take seconds. That server's
backend is 'openai' pointed at a loopback port nobody listens on, so the chat reads messages
with its rules (the LLM reading is marked unavailable), profiles are the data-facts ones,
lists keep retrieval order and explanations are the data template; the page shows the same
fields either way, and says how each list was made. One test (``test_with_the_model``)
drives the page against the same app with the session's real vLLM server (fixture
``vllm_managed``: the default SmolLM2 model) behind the chat reading and the re-ranker.

Screenshots (phone and desktop width) are written to ``test-artifacts/web/`` at the
repository root (ignored by git; ``TASTELENS_TEST_ARTIFACTS`` moves it). Without Chromium
and its driver the tests skip and say how to install them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.llm.vllm_server import free_port
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ..conftest import write_movielens
from ..webdata import make_web_dataset

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
KEY = "page-test-key-0123456789"
PHONE = (390, 844)
DESKTOP = (1280, 900)
WAIT_S = 30


def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("the browser tests need Chromium and its driver: apt-get install chromium "
                    "chromium-driver (.ci/run installs them)")
    return chromium, driver


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("TASTELENS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def web_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Where the page's server keeps its files: root (its settings), folder (the data), cache."""
    root = tmp_path_factory.mktemp("web-page")
    return {"root": root, "folder": root / "ml-web", "cache": root / "cache"}


@pytest.fixture(scope="module")
def server(web_files: dict[str, Path]) -> Iterator[str]:
    """``tastelens api`` as a process (its own settings file, an API key); yields its URL."""
    browser_paths()  # skip before paying for the start
    root = web_files["root"]
    folder = write_movielens(make_web_dataset(), root / "ml-web", tags=True)
    refused = f"http://127.0.0.1:{free_port()}/v1"
    (root / "tastelens.toml").write_text(
        f'[embedder]\nmodel = "hashing"\n[llm]\nbackend = "openai"\nbase_url = "{refused}"\n'
        '[recommend]\nprofile_source = "store"\non_missing_profile = "facts"\nk = 8\n'
        '[recommend.rerank]\nmode = "none"\n[recommend.retriever]\nn_candidates = 12\n'
        '[recommend.collaborative]\nenabled = false\n')
    cache = root / "cache"
    settings = load_settings(root / "tastelens.toml", cache_dir=cache)
    dataset = load_dataset(folder)
    ItemIndex.for_dataset(settings, dataset.name, HashingEncoder()).build(
        dataset.items.values(), progress=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTELENS_")}
    env["TASTELENS_API__API_KEY"] = KEY
    log = (root / "api.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("tastelens")), "--cache-dir", str(cache), "api",
         "--port", str(port), "--data", str(folder)],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (root / "api.log").read_text()
            assert time.monotonic() < deadline, "tastelens api did not answer within 180 s"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        log.close()
    output = (root / "api.log").read_text()
    assert "Traceback" not in output, output[-4000:]


@pytest.fixture(scope="module")
def model_server(vllm_managed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: ANN001
    """The app (in-process uvicorn over loopback) with the real vLLM server behind it."""
    from pydantic import SecretStr

    from tastelens.agent.pipeline import RecommendPipeline
    from tastelens.api.app import create_app
    from tastelens.config.settings import (
        APISettings,
        ChromaSettings,
        EmbedderSettings,
        LLMSettings,
        Settings,
    )

    from .conftest import serving

    browser_paths()
    dataset = make_web_dataset()
    settings = Settings(cache_dir=tmp_path_factory.mktemp("web-model"),
                        chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        # two busy CPU cores: the default 30 s could run out mid-test
                        llm=LLMSettings(interactive_deadline_s=600),
                        api=APISettings(api_key=SecretStr(KEY)),
                        recommend={"profile_source": "facts", "k": 8,
                                   "rerank": {"mode": "score"},
                                   "retriever": {"n_candidates": 12},
                                   "collaborative": {"enabled": False}})
    ItemIndex.for_dataset(settings, dataset.name, HashingEncoder()).build(
        dataset.items.values(), progress=False)
    with RecommendPipeline.from_settings(settings, dataset, llm=vllm_managed,
                                         config=settings.recommend) as pipeline:
        with serving(create_app(settings, pipeline=pipeline)) as base:
            yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


# -- helpers -----------------------------------------------------------------------------------
def wait(driver, condition, timeout: float = WAIT_S):  # noqa: ANN001, ANN201
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def css(driver, selector: str) -> list:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def one(driver, selector: str):  # noqa: ANN001, ANN201
    found = css(driver, selector)
    assert found, f"nothing matches {selector!r}"
    return found[0]


def open_page(driver, base: str, user: str | None = None, key: bool = True) -> None:  # noqa: ANN001
    driver.get(base + (f"/?user={user}" if user else "/"))
    if key:  # the key this tab keeps (a real visitor types it once: see the first test)
        driver.execute_script("sessionStorage.setItem('tastelens.api-key', arguments[0])", KEY)
        driver.get(base + (f"/?user={user}" if user else "/"))
    wait(driver, lambda d: one(d, "#who-line").text)


def say(driver, text: str, timeout: float = WAIT_S) -> list:  # noqa: ANN001
    """Type ``text`` into the message box, press Enter and wait for the answer; returns the
    messages the bot added (their <li> elements)."""
    from selenium.webdriver.common.keys import Keys

    before = len(css(driver, "#log > li"))
    box = one(driver, "#message")
    box.send_keys(text, Keys.ENTER)
    wait(driver, lambda d: len(css(d, "#log > li")) >= before + 2
         and one(d, "#chat-busy").get_attribute("hidden") is not None, timeout)
    return css(driver, "#log > li")[before + 1:]


def cards(message) -> list[dict]:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    out = []
    for card in message.find_elements(By.CSS_SELECTOR, ".card"):
        out.append({
            "item": card.get_attribute("data-item"),
            "title": card.find_element(By.CSS_SELECTOR, ".title").text,
            "year": int(card.find_element(By.CSS_SELECTOR, ".year").text),
            "tags": [t.text for t in card.find_elements(By.CSS_SELECTOR, ".tag")],
            "why": card.find_element(By.CSS_SELECTOR, ".why").text,
            "cited": [c.text for c in card.find_elements(By.CSS_SELECTOR, ".cited")],
            "explored": bool(card.find_elements(By.CSS_SELECTOR, ".badge")),
        })
    return out


def bubble(message) -> str:  # noqa: ANN001
    return message.find_element("css selector", ".bubble").text


def no_sideways_scroll(driver) -> bool:  # noqa: ANN001
    return driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")


def shot(driver, artifacts: Path, name: str) -> None:  # noqa: ANN001
    assert driver.save_screenshot(str(artifacts / f"{name}.png"))


def open_profile(driver) -> None:  # noqa: ANN001
    """Reach the profile tab from the keyboard: focus the Chat tab, press the right arrow."""
    from selenium.webdriver.common.keys import Keys

    one(driver, "#tab-chat").send_keys(Keys.ARROW_RIGHT)
    wait(driver, lambda d: one(d, "#tab-profile").get_attribute("aria-selected") == "true")
    wait(driver, lambda d: one(d, "#profile").is_displayed() or one(d, "#alert").is_displayed())


# -- the tests -------------------------------------------------------------------------------------
def test_chat_asks_for_the_key_then_shows_explained_cards(browser, server, artifacts) -> None:  # noqa: ANN001
    driver = browser
    open_page(driver, server, user="1", key=False)
    driver.execute_script("sessionStorage.clear()")
    started = time.perf_counter()
    from selenium.webdriver.common.keys import Keys

    one(driver, "#message").send_keys("something exciting", Keys.ENTER)
    wait(driver, lambda d: one(d, "#key-form").is_displayed())  # the API said 401
    one(driver, "#api-key").send_keys(KEY, Keys.ENTER)  # the message goes out again
    wait(driver, lambda d: css(d, ".card"))
    print(f"first list on the page (with the key prompt) in {time.perf_counter() - started:.2f} s")
    shown = cards(css(driver, "#log > li.bot")[-1])
    assert len(shown) >= 5  # the chat asks for ChatConfig.k
    for card in shown:
        assert card["title"] and 1970 < card["year"] < 2030 and card["tags"] and card["why"]
    assert any(c["cited"] and c["cited"][0].startswith("Because you liked: ") for c in shown)
    assert [c["explored"] for c in shown][-2:] == [True, True]  # the exploration slots
    how = css(driver, "#log > li.bot")[-1].find_element("css selector", ".report").text
    assert how.startswith("ranking: retrieval order · reading: rules (model unavailable) · ")
    assert not any(c["explored"] for c in shown[:-2])
    assert no_sideways_scroll(driver)
    shot(driver, artifacts, "chat-phone")


def test_a_users_token_opens_their_data_only(browser, server, web_files) -> None:  # noqa: ANN001
    from selenium.webdriver.common.keys import Keys

    from ..apiproc import issue_token

    token = issue_token(web_files["root"], web_files["cache"], web_files["folder"], "6")
    driver = browser
    driver.get(server + "/?user=6")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server + "/?user=6")
    wait(driver, lambda d: one(d, "#who-line").text)
    one(driver, "#tab-profile").click()
    wait(driver, lambda d: one(d, "#key-form").is_displayed())  # 401: no token yet
    assert "user 6's access token" in one(driver, "#key-why").text
    one(driver, "#api-key").send_keys(token, Keys.ENTER)
    wait(driver, lambda d: one(d, "#profile").is_displayed())
    assert "Profile of user 6" in one(driver, "#version").text
    assert driver.execute_script("return sessionStorage.getItem('tastelens.token.6')") == token
    assert driver.execute_script("return sessionStorage.getItem('tastelens.api-key')") is None
    # another user: the page sends user 6's token for user 6 only, and asks again
    box = one(driver, "#user-id")
    box.clear()
    box.send_keys("9", Keys.ENTER)
    wait(driver, lambda d: one(d, "#key-form").is_displayed())
    assert "user 9's access token" in one(driver, "#key-why").text
    assert not one(driver, "#profile").is_displayed()
    one(driver, "#api-key").send_keys(token, Keys.ENTER)  # user 6's token, for user 9: 403
    wait(driver, lambda d: one(d, "#key-form").is_displayed()
         and "this token is for user '6'" in one(d, "#key-why").text)
    assert not one(driver, "#profile").is_displayed()
    one(driver, "#api-key").send_keys(KEY, Keys.ENTER)  # the operator key reaches everyone
    wait(driver, lambda d: one(d, "#profile").is_displayed()
         and "Profile of user 9" in one(d, "#version").text)
    box = one(driver, "#user-id")  # back to user 6: their own token is still used
    box.clear()
    box.send_keys("6", Keys.ENTER)
    wait(driver, lambda d: one(d, "#profile").is_displayed()
         and "Profile of user 6" in one(d, "#version").text)


def test_follow_ups(browser, server, artifacts) -> None:  # noqa: ANN001
    driver = browser
    open_page(driver, server, user="1")
    first = cards(say(driver, "something exciting")[-1])
    answer = say(driver, "why the second?")[-1]
    assert bubble(answer).startswith(f"#2 {first[1]['title']}: ")
    assert "asked" in css(driver, "#log .cards")[-1].find_elements(
        "css selector", ".card")[1].get_attribute("class")

    no_horror = cards(say(driver, "no horror")[-1])
    assert no_horror and not any("Horror" in c["tags"] for c in no_horror)
    years = sorted(c["year"] for c in no_horror)
    newer = cards(say(driver, "more recent ones")[-1])
    assert newer and min(c["year"] for c in newer) > years[len(years) // 2]
    # the chips send the same words; "more" excludes everything shown so far
    one(driver, '.chip[data-say="more"]').click()
    wait(driver, lambda d: one(d, "#chat-busy").get_attribute("hidden") is not None
         and len(css(d, "#log > li")) >= 10)
    more = css(driver, "#log > li.bot")[-1]
    assert bubble(more).startswith("Here are") and "more" in bubble(more)
    assert not {c["item"] for c in cards(more)} & {c["item"] for c in newer}
    shot(driver, artifacts, "chat-follow-ups-phone")


def test_a_new_visitor_states_their_taste(browser, server) -> None:  # noqa: ANN001
    driver = browser
    open_page(driver, server)
    assert "new visitor" in one(driver, "#who-line").text
    shown = cards(say(driver, "I love space adventures")[-1])
    assert shown and sum("Sci-Fi" in c["tags"] for c in shown) >= len(shown) // 2


def test_loading_state_and_errors_are_shown(browser, server) -> None:  # noqa: ANN001
    driver = browser
    open_page(driver, server, user="nobody")
    from selenium.webdriver.common.keys import Keys

    # Slow the page's requests down (in the browser only) so the loading state is visible.
    driver.execute_script("""
        const real = window.fetch;
        window.fetch = (...args) => new Promise((ok) => setTimeout(ok, 800))
            .then(() => real(...args));""")
    one(driver, "#message").send_keys("hello", Keys.ENTER)
    wait(driver, lambda d: one(d, "#chat-busy").is_displayed(), timeout=2)
    assert not one(driver, "#send").is_enabled()
    assert one(driver, "#log").get_attribute("aria-busy") == "true"
    wait(driver, lambda d: css(d, "#log > li.error"))
    error = bubble(css(driver, "#log > li.error")[-1])
    assert "unknown user id 'nobody'" in error and one(driver, "#send").is_enabled()
    open_profile(driver)
    wait(driver, lambda d: one(d, "#alert").is_displayed())
    assert "Could not load the profile of user nobody" in one(driver, "#alert").text
    assert "unknown user id 'nobody'" in one(driver, "#alert").text


def test_profile_then_removing_an_interest_changes_the_next_list(browser, server,
                                                                  artifacts) -> None:  # noqa: ANN001
    driver = browser
    open_page(driver, server, user="6")  # a heist lover (tests/webdata.py)
    before = cards(say(driver, "something exciting")[-1])
    assert any('"heist"' in c["why"] for c in before)  # the list follows the interest

    open_profile(driver)
    groups = css(driver, "#interests .group")
    assert [g.get_attribute("data-granularity") for g in groups] == [
        "keyword", "topic", "sentiment", "application"]
    # a keyword interest mined from the catalog's descriptors, with its evidence items
    keyword = one(driver, '#interests section[data-granularity="keyword"]')
    heist = one(keyword, 'li.interest[data-label="heist"]')
    assert "From: Vault" in heist.text
    evidence = heist.text.split("From: ", 1)[1].split("; ")
    assert evidence and all(title.startswith("Vault ") for title in evidence)
    topic = one(driver, '#interests section[data-granularity="topic"]')
    assert "About: " in topic.text and "heist" in topic.text  # a topic names its descriptors
    assert css(driver, '#drift svg rect.long') and css(driver, '#drift svg rect.recent')
    assert "Drift:" in one(driver, "#drift-text").text
    assert css(driver, "#dislikes li")
    assert no_sideways_scroll(driver)
    shot(driver, artifacts, "profile-phone")

    one(driver, 'button[aria-label="Remove heist"]').click()
    wait(driver, lambda d: not css(d, '#interests li.interest[data-label="heist"]'))
    assert one(driver, '#removed li[data-label="heist"]').is_displayed()
    assert "version 1" in one(driver, "#version").text

    one(driver, "#tab-chat").click()
    after = cards(say(driver, "something exciting")[-1])
    # ... and no longer cites it (the topic "Crime: heist" the user kept still may)
    assert after and not any('"heist"' in c["why"] for c in after)
    assert [c["item"] for c in after] != [c["item"] for c in before]


def test_dislike_and_pin_are_stored(browser, server, artifacts) -> None:  # noqa: ANN001
    from selenium.webdriver.common.keys import Keys

    driver = browser
    open_page(driver, server, user="9")  # a zombie-film fan (tests/webdata.py)
    assert any("Horror" in c["tags"] for c in cards(say(driver, "something with zombies")[-1]))
    open_profile(driver)
    one(driver, "#dislike").send_keys("horror", Keys.ENTER)
    wait(driver, lambda d: css(d, '#dislikes li[data-label="Horror"] .badge'))
    label = one(driver, "#interests li.interest").get_attribute("data-label")
    one(driver, f'button[aria-label="Pin {label}"]').click()
    wait(driver, lambda d: css(d, f'button[aria-label="Unpin {label}"]'))
    driver.refresh()  # stored on the server, not in the page
    open_profile(driver)
    wait(driver, lambda d: css(d, '#dislikes li[data-label="Horror"]'))
    assert one(driver, "#interests li.interest").get_attribute("data-label") == label
    assert "pinned" in one(driver, "#interests li.interest").text
    assert "version 2" in one(driver, "#version").text
    one(driver, "#tab-chat").click()
    shown = cards(say(driver, "something with zombies")[-1])
    assert shown and not any("Horror" in c["tags"] for c in shown)  # not the genre they left

    driver.set_window_size(*DESKTOP)
    try:
        open_profile(driver)
        shot(driver, artifacts, "profile-desktop")
        one(driver, "#tab-chat").click()
        shot(driver, artifacts, "chat-desktop")
    finally:
        driver.set_window_size(*PHONE)


@pytest.mark.timeout(900)
def test_with_the_model(browser, model_server, artifacts) -> None:  # noqa: ANN001
    driver = browser
    open_page(driver, model_server, user="1")
    started = time.perf_counter()
    answer = say(driver, "something exciting", timeout=600)[-1]
    print(f"a list with the model (reading + score re-ranking) in "
          f"{time.perf_counter() - started:.1f} s")
    shown = cards(answer)
    assert shown and all(c["why"] for c in shown)
    how = answer.find_element("css selector", ".report").text
    assert how.startswith("ranking: score · reading: "), how  # re-ranked by the model
    why = say(driver, "why the second?", timeout=600)[-1]
    assert bubble(why).startswith(f"#2 {shown[1]['title']}: ")
    shot(driver, artifacts, "chat-model-phone")
