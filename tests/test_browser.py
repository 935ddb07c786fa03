"""The browser player in real, headless Chromium (Debian's `chromium`, driven by Playwright).

Each test serves an exported folder with a local static file server, as a user would
with `python -m http.server`. Screenshots go to $TWISTERL_ARTIFACTS (default
test-artifacts/ at the repository root).
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import time

from wasm_support import ROOT, SMALL_PUZZLE_TRAINING, exported, require_tools, trained_puzzle

ARTIFACTS = Path(os.environ.get("TWISTERL_ARTIFACTS") or ROOT / "test-artifacts")


def _chromium() -> str:
    path = os.environ.get("TWISTERL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no Chromium: apt-get install chromium (runtime/wasm/setup-tools.sh --browser)"
        if os.environ.get("TWISTERL_REQUIRE_WASM"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(build_cache):
    require_tools()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("TWISTERL_REQUIRE_WASM"):
            pytest.fail("playwright is not installed: pip install -e '.[test]'")
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve():
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-state]", timeout=30_000)
    return page, errors


def _one_move_puzzle(compiled) -> tuple[int, str]:
    """A seed whose difficulty-1 puzzle is unsolved, and the action name that solves it."""
    cls = compiled("puzzle")
    for seed in range(100):
        env = cls(seed=seed, difficulty=1)
        _, start = env.reset()
        if start["success"]:
            continue
        for a in np.flatnonzero(start["action_mask"]):
            probe = cls(seed=seed, difficulty=1)
            probe.reset()
            if probe.step(int(a))[4]["success"]:
                return seed, env.action_names()[a]
    raise AssertionError("no one-move puzzle in 100 seeds")


def _reset(page, seed: int, difficulty: int) -> None:
    page.fill("#seed", str(seed))
    page.fill("#difficulty", str(difficulty))
    page.click("#reset")


def test_a_human_solves_a_one_move_puzzle_by_clicking(browser, serve, compiled):
    seed, move = _one_move_puzzle(compiled)
    url = serve(exported("puzzle").out_dir)
    page, errors = _open(browser, url)
    assert page.get_attribute("body", "data-state") == "ready"
    assert page.text_content("#title") == "SlidingPuzzle"
    _reset(page, seed, 1)
    assert page.locator("#board td").count() == 9          # the render block drawn as a 3x3 grid
    assert page.text_content("#outcome") == ""
    # Without a policy: human play only, said plainly.
    assert page.is_disabled("#play") and "human play only" in page.text_content("#agent-note")
    page.click(f"#actions button:text-is('{move}')")
    page.wait_for_selector("#outcome.success", timeout=5_000)
    assert "solved" in page.text_content("#outcome")
    assert page.text_content("#steps") == "1"
    assert all(b.is_disabled() for b in page.locator("#actions button").all())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "player-human-solved.png"), full_page=True)
    # The keyboard plays too: a new episode, then an arrow key.
    _reset(page, seed, 1)
    key = {"left": "ArrowLeft", "right": "ArrowRight", "up": "ArrowUp", "down": "ArrowDown"}[move]
    page.click("#board")
    page.keyboard.press(key)
    page.wait_for_selector("#outcome.success", timeout=5_000)
    assert errors == []
    page.close()


def test_the_agent_plays_an_episode_to_success(browser, serve, compiled):
    seed, _ = _one_move_puzzle(compiled)
    run = trained_puzzle()
    url = serve(exported("puzzle", run).out_dir)
    page, errors = _open(browser, url)
    assert "with a trained policy" in page.text_content("#subtitle")
    assert page.input_value("#difficulty") == "1"            # the policy's training difficulty
    _reset(page, seed, 1)
    assert page.text_content("#outcome") == ""
    page.fill("#speed", "30")
    page.dispatch_event("#speed", "input")
    page.uncheck("#auto-reset")                              # stop when the episode ends
    page.click("#play")
    assert page.text_content("#play") == "Pause"
    page.wait_for_selector("#outcome.success", timeout=20_000)
    page.wait_for_selector("#play:text-is('Play')", timeout=5_000)
    assert int(page.text_content("#steps")) >= 1
    assert float(page.text_content("#return")) > 0
    assert page.text_content("#episodes") == "1" and page.text_content("#solved") == "1"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "player-agent-solved.png"), full_page=True)
    # Step by step, on the next seeds.
    page.click("#next")
    for _ in range(20):
        if "solved" in page.text_content("#outcome"):
            break
        page.click("#agent-step")
    assert "solved" in page.text_content("#outcome")
    # Play on: with "new episode when one ends", the agent moves on to the next seeds.
    page.check("#auto-reset")
    page.click("#play")
    page.wait_for_function("Number(document.getElementById('episodes').textContent) >= 5", timeout=30_000)
    page.click("#play")
    assert page.text_content("#play") == "Play"
    assert int(page.text_content("#solved")) >= 4
    assert errors == []
    page.close()


def test_a_broken_bundle_shows_a_readable_message(browser, serve, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported("puzzle").out_dir, broken)
    (broken / "pkg" / "env_bg.wasm").write_bytes(b"not a wasm module")
    page, _ = _open(browser, serve(broken))
    assert page.get_attribute("body", "data-state") == "failed"
    assert page.is_visible("#error")
    assert "Could not load the environment" in page.text_content("#error")
    assert "pkg/env_bg.wasm is missing or is not valid WebAssembly" in page.text_content("#error")
    (broken / "bundle.json").unlink()
    page.reload()
    page.wait_for_selector("body[data-state=failed]")
    assert "bundle.json" in page.text_content("#error")
    page.close()


def test_other_examples_render_in_the_player(browser, serve):
    url = serve(exported("connect4").out_dir)
    page, errors = _open(browser, url)
    assert page.get_attribute("body", "data-state") == "ready"
    assert page.locator("#actions button").count() == 7
    page.click("#actions button >> nth=3")
    assert page.text_content("#steps") == "1"
    assert "player 1 to move" in page.text_content("#player")
    assert errors == []
    page.close()


def test_the_player_shows_a_search_and_lets_the_agent_search(browser, serve, compiled):
    """A package exported with search (no policy): the Search button writes each action's
    visits on its button, the same visits as the native search from the same state and
    seed, and with "the agent searches" the agent plays the most visited move."""
    import twisterl
    url = serve(exported("tictactoe", search=True).out_dir)
    page, errors = _open(browser, url)
    assert page.is_visible("#search-controls")
    _reset(page, 0, 0)
    page.fill("#simulations", "60")
    page.click("#search")
    texts = [b.text_content() for b in page.locator("#actions button").all()]
    shown = [int(t.rsplit("·", 1)[1]) for t in texts]
    env = compiled("tictactoe")(seed=0)
    env.reset(seed=0)
    native = twisterl.mcts(env, simulations=60, seed=0)
    assert shown == [int(v) for v in native.visits]
    best = page.locator("#actions button.best")
    assert best.count() == 1 and best.text_content().startswith(env.action_names()[native.action])
    assert "60 simulations" in page.text_content("#search-note")
    # The agent searches before its move (seed 1: the player's second search).
    page.check("#play-search")
    assert not page.is_disabled("#agent-step")
    page.click("#agent-step")
    assert page.text_content("#steps") == "1"
    played = twisterl.mcts(env, simulations=60, seed=1).action
    disabled = [i for i, b in enumerate(page.locator("#actions button").all()) if b.is_disabled()]
    assert disabled == [played]  # the one cell now taken is the native search's move
    assert errors == []
    page.close()


def _shown_thinking(page) -> tuple[list[float], float]:
    probs = [float(t.rstrip("%")) / 100 for t in page.locator("#probs b").all_text_contents()]
    return probs, float(page.text_content("#value-text"))


def test_the_player_shows_what_the_agent_thinks_in_watch_and_play_mode(browser, serve, compiled):
    """With a bundled policy the player shows, for the current state, each action's
    probability under the policy (none for an illegal action) and its value estimate: the
    same numbers as the native policy's on that state, and they follow the state when the
    agent moves (watch) and when a human moves (play)."""
    from twisterl.train.checkpoints import load_policy
    from twisterl.train.networks import runtime_policy
    from twisterl.train.rundir import find_run
    run = trained_puzzle()
    net, _, _ = load_policy(find_run(str(run)))
    native = runtime_policy(net)
    cls = compiled("puzzle")
    url = serve(exported("puzzle", run).out_dir)
    page, errors = _open(browser, url)
    _reset(page, 3, 6)
    assert page.is_visible("#thinking")
    env = cls(seed=3, difficulty=6)
    env.reset(seed=3)

    def expected() -> tuple[np.ndarray, float]:
        obs = np.zeros((1, net.obs_size), np.float32)
        obs[0, env.observe_indices()] = 1.0
        logits, values = native.forward_dense(obs)
        mask = env.action_mask()
        z = np.where(mask, logits[0].astype(np.float64), -np.inf)
        p = np.exp(z - z.max())
        return p / p.sum(), float(values[0])

    def check() -> None:
        probs, value = _shown_thinking(page)
        want, want_value = expected()
        assert len(probs) == len(want) and abs(sum(probs) - 1.0) < 2e-3
        assert np.allclose(probs, want, atol=1.5e-3), (probs, want)
        assert all(p == 0.0 for p, legal in zip(probs, env.action_mask()) if not legal)
        assert abs(value - want_value) < 2e-3

    check()
    before = _shown_thinking(page)
    # Watch: the agent's most likely move, then the view of the new state.
    page.check("#deterministic")
    page.click("#agent-step")
    env.step(int(np.argmax(np.where(env.action_mask(), expected()[0], -1.0))))
    check()
    # Play: a human's move (the first legal one), and the view follows.
    first = int(np.flatnonzero(env.action_mask())[0])
    page.click(f"#actions button:text-is('{env.action_names()[first]}')")
    env.step(first)
    check()
    assert _shown_thinking(page) != before
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "player-thinking.png"), full_page=True)
    assert errors == []
    page.close()


def test_the_player_trains_the_puzzle_in_the_page(browser, serve):
    """A package exported with --train shows a Train button: PPO runs in a Web Worker (the
    page answers at once throughout), the curve and the status follow each iteration, it
    pauses and resumes, it climbs the curriculum to difficulty 8 within 60 s, and the agent
    then plays (and thinks with) the policy trained in the page."""
    url = serve(exported("puzzle", train=SMALL_PUZZLE_TRAINING).out_dir)
    page, errors = _open(browser, url)
    assert page.is_visible("#training") and page.text_content("#train") == "Train"
    assert "No policy" in page.text_content("#agent-note") and page.is_disabled("#agent-step")
    start = time.perf_counter()
    page.click("#train")
    page.wait_for_function("Number(document.body.dataset.trainIteration) >= 1", timeout=30_000)
    page.click("#train")  # pause
    page.wait_for_function("document.body.dataset.training === 'paused'")
    time.sleep(0.5)  # an iteration under way when the pause came still finishes
    paused_at = page.evaluate("window.__training.length")
    time.sleep(1.0)
    assert page.evaluate("window.__training.length") == paused_at, "a paused trainer does not iterate"
    assert page.text_content("#train") == "Resume training"
    page.click("#train")
    slowest = 0.0
    while page.evaluate("document.body.dataset.training") == "running":
        asked = time.perf_counter()
        page.evaluate("document.getElementById('train-status').textContent")
        slowest = max(slowest, time.perf_counter() - asked)
        assert time.perf_counter() - start < 60, page.text_content("#train-status")
        time.sleep(0.05)
    assert page.evaluate("document.body.dataset.training") == "finished", page.text_content("#train-status")
    assert slowest < 0.5, f"the page took {slowest:.2f} s to answer while training"
    history = page.evaluate("window.__training")
    assert history[-1]["difficulty"] == 8 and history[-1]["finished"]
    assert [h["iteration"] for h in history] == list(range(len(history)))
    assert "difficulty 8" in page.text_content("#train-status")
    assert page.is_disabled("#train")
    # The agent plays the trained policy and shows what it thinks of the state.
    assert "trained in this page" in page.text_content("#agent-note")
    assert page.is_visible("#thinking")
    page.check("#deterministic")
    _reset(page, 5, 3)
    for _ in range(30):
        if "solved" in page.text_content("#outcome"):
            break
        page.click("#agent-step")
    assert "solved" in page.text_content("#outcome")
    curve = page.evaluate("""() => {
        const c = document.getElementById('curve'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let inked = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && !(d[i] > 190 && d[i + 1] > 190)) inked++;
        return inked;
    }""")
    assert curve > 200, "the learning curve is drawn"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "player-training.png"), full_page=True)
    assert errors == []
    page.close()
