"""The backprop viewer (``gc.view``, ``graphc view``) and the PDF deck (``graphc render --steps
-o deck.pdf``).

The page is checked twice: as text (self-contained, escaped, its data and code map), and in
a real headless Chromium driven by selenium (stepping with the keys, the lecture's numbers
at their steps, node <-> code highlighting, a 1280x720 screenshot, no request). The browser
tests skip, saying why, where Chromium, chromedriver or selenium is missing
(scripts/setup.sh installs them as root).
"""

from __future__ import annotations

import html.parser
import io
import json
import os
import re
import shutil
import tempfile

import numpy as np
import pytest

import graphc as gc
from graphc.cli.main import main as cli
from graphc.example import load_example
from graphc.render.viewer import slide_array, slide_number, view
from graphc.render.viewer_html import statement_lines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")

#: The sigmoid neuron's steps: 0 the inputs, 1-8 forward, 9 the seed, 10-17 backward.
FORWARD, SEED, LAST = 8, 9, 17


def example(name: str) -> gc.Example:
    return load_example(os.path.join(EXAMPLES, f"{name}.py"))


def page_data(page: str) -> dict:
    """The JSON the page's script reads."""
    found = re.search(r'<script type="application/json" id="graphc-data">(.*?)</script>', page,
                      re.S)
    assert found, "the page carries its data in a JSON script element"
    return json.loads(found.group(1))


class Elements(html.parser.HTMLParser):
    """Counts the page's elements and collects every attribute, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    return parser


# --- numbers and code, without a browser ----------------------------------------------------
@pytest.mark.parametrize(("x", "text"), [
    (0.7310585786, "0.73"), (-0.1966119332, "-0.20"), (0.3932238664, "0.39"), (6.0, "6.00"),
    (-3, "-3.00"), (0.0, "0.00"), (-0.0, "0.00"), (1.3678794412, "1.37"), (1.2e-5, "1.2e-05"),
    (-3.4e6, "-3.4e+06"), (float("nan"), "nan"), (float("-inf"), "-inf"),
])
def test_numbers_are_written_as_the_slides_write_them(x, text):
    assert slide_number(x) == text


def test_tensors_show_entries_or_a_summary_and_labels_as_integers():
    assert slide_array(np.array([[1.0, -0.5], [0.25, 2.0]]), multiline=True) == \
        "[[1.00, -0.50],\n[0.25, 2.00]]"
    assert slide_array(np.array([0, 3, 1])) == "[0, 3, 1]"
    assert slide_array(np.ones((4, 128))) == "4×128: mean 1.00, norm 22.63"


def test_statements_are_found_for_each_node_of_a_generated_module():
    ex = example("sigmoid_neuron")
    prog = gc.compile(ex.outputs, ex.input_nodes, optimize=0)
    by_id, by_target = statement_lines(prog.source, prog.names)
    lines = prog.source.splitlines()
    f = ex.outputs[0]
    assert lines[by_id[f.id][0]].strip().startswith("f = 1/add2")
    assert [lines[i].split("=")[0].strip() for i in by_target["dot"]] == ["dot"]
    assert "w0" not in by_target  # an argument, not a statement


@pytest.fixture(scope="module")
def sigmoid_page(tmp_path_factory) -> str:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is missing")
    ex = example("sigmoid_neuron")
    path = tmp_path_factory.mktemp("viewer") / "sigmoid.html"
    page = view(ex.outputs, ex.feeds, path=path, title="sigmoid_neuron")
    assert path.read_text(encoding="utf-8") == page
    return str(path)


def test_the_page_is_self_contained_and_forbids_requests(sigmoid_page):
    page = open(sigmoid_page, encoding="utf-8").read()
    elements = parse(page)
    names = {name for name, _ in elements.attrs}
    assert not names & {"src", "href", "xlink:href", "srcset", "action"}, names
    assert "link" not in elements.tags and "@import" not in page and "url(" not in page
    csp = [v for k, v in elements.attrs if k == "content" and v and "default-src" in v]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                   "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"]
    assert elements.tags["svg"] == 3 and elements.tags["script"] == 2
    assert len(page) < 200_000, len(page)


def test_the_lecture_steps_write_out_local_times_upstream(sigmoid_page):
    stages = page_data(open(sigmoid_page, encoding="utf-8").read())["stages"]
    assert [s["key"] for s in stages] == ["source", "autodiff", "optimized"]
    steps = stages[0]["steps"]
    assert len(steps) == LAST + 1
    assert [s["kind"] for s in steps] == (["start"] + ["forward"] * FORWARD + ["seed"]
                                          + ["backward"] * FORWARD)
    assert steps[FORWARD]["heading"].endswith("f = 0.73")
    assert steps[SEED]["heading"] == "Backward pass: start from ∂f/∂f = 1.00"
    assert steps[SEED + 1]["rows"] == [["∂f/∂(1 + exp(-dot))", "-f^2 = -0.53", "×", "1.00",
                                        "=", "-0.53"]]
    assert steps[LAST]["rows"] == [["∂f/∂w0", "x0 = -1.00", "×", "0.20", "=", "-0.20"],
                                   ["∂f/∂x0", "w0 = 2.00", "×", "0.20", "=", "0.39"]]
    fused = stages[2]["steps"][-1]["rows"]
    assert [r[-1] for r in fused] == ["-0.20", "0.39", "-0.39", "-0.59", "0.20"]
    assert fused[0][1] == "f·x0·(1 - f) = -0.20"


def test_each_step_points_at_the_code_that_computes_it(sigmoid_page):
    page = open(sigmoid_page, encoding="utf-8").read()
    stages = page_data(page)["stages"]
    code = page.split('<pre class="code" data-stage="0"', 1)[1].split("</pre>", 1)[0]
    lines = [re.sub(r"<[^>]+>", "", ln) for ln in re.findall(r'<span class="ln".*?</span>'
                                                             r"(?=<span class=\"ln\"|$)", code)]
    steps = stages[0]["steps"]
    assert [lines[i].split("#")[0].strip() for i in steps[FORWARD]["code"]] == ["f = 1/add2"]
    assert [lines[i].split("=")[0].strip() for i in steps[LAST]["code"]] == ["d_w0", "d_x0"]
    node_at = stages[0]["code"]["node_at"]
    f_line = steps[FORWARD]["code"][0]
    assert node_at[str(f_line)] == steps[FORWARD]["node"]


def test_hostile_names_are_escaped_in_the_figure_the_code_and_the_data(tmp_path):
    evil = "</script><script>alert(1)</script><!--"
    x = gc.input(evil, (), dtype="float64")
    y = gc.input("<b>&amp;", (), dtype="float64")
    page = view(gc.exp(x) * y, {evil: 0.5, "<b>&amp;": 2.0}, title="<img src=x onerror=1>")
    elements = parse(page)
    assert elements.tags["script"] == 2 and "img" not in elements.tags and "b" not in elements.tags
    assert "alert(1)</script>" not in page and "<!--" not in page
    data = page_data(page)
    start = data["stages"][0]["steps"][0]["rows"]
    assert [r[0] for r in start] == [evil, "<b>&amp;"]  # the names, as they are, in the data


def test_a_network_opens_collapsed_by_layers_with_one_expansion_per_layer(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is missing")
    from graphc.cli.main import figure_feeds

    ex = example("mlp_digits")
    stages = page_data(view(ex.outputs, figure_feeds(ex)))["stages"]
    variants = stages[0]["variants"]
    assert [v["label"] for v in variants] == ["by layers", "all nodes", "layer 1 open",
                                              "layer 2 open"]
    boxes = sorted(variants[0]["expand"].items())
    assert boxes == [("g0", 2), ("g1", 3)]
    assert len(variants[2]["members"]) > len(variants[0]["members"])
    assert variants[2]["expand"] == {"g0": 3}  # layer 1 drawn node by node, layer 2 a box


@needs_dot
def test_the_command_writes_the_page_and_the_pdf_deck(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    page, deck = tmp_path / "sigmoid.html", tmp_path / "deck.pdf"
    assert cli(["view", os.path.join(EXAMPLES, "sigmoid_neuron.py"), "-o", str(page)]) == 0
    assert "sigmoid_neuron" in page.read_text(encoding="utf-8")
    assert cli(["render", os.path.join(EXAMPLES, "sigmoid_neuron.py"), "--steps", "-o",
                str(deck)]) == 0
    pages = pypdf.PdfReader(str(deck)).pages
    assert len(pages) == FORWARD
    texts = [" ".join(p.extract_text().replace("\xa0", " ").split()) for p in pages]
    assert "step 1 of 8: back through 1/x" in texts[0]
    assert "step 8 of 8: back through ×" in texts[-1]
    assert "0.73" in " ".join(texts) and "-0.20" in " ".join(texts)  # the slides' numbers
    assert sorted(os.listdir(tmp_path)) == ["deck.pdf", "sigmoid.html"]  # no frames left over


# --- in a browser -----------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            pytest.skip(f"no browser for the viewer tests: {program} is missing "
                        "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="graphc-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                 "--proxy-server=127.0.0.1:9", "--window-size=1280,720"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False})
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: str, fragment: str = ""):
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(f"file://{path}{fragment}")
    return driver


def press(driver, key: str, times: int = 1) -> None:
    from selenium.webdriver.common.by import By

    body = driver.find_element(By.TAG_NAME, "body")
    for _ in range(times):
        body.send_keys(key)


def current(driver) -> dict:
    """What the page shows now: the step counter, the caption, the highlighted vertex, the
    highlighted lines of code, and the texts of every arrow as visible or not."""
    return driver.execute_script("""
        const fig = [...document.querySelectorAll('.figure')].find(d => !d.hidden);
        const pre = [...document.querySelectorAll('.code')].find(d => !d.hidden);
        const shown = t => getComputedStyle(t).visibility !== 'hidden';
        return {
          counter: document.getElementById('counter').textContent,
          caption: document.getElementById('caption').innerText,
          hash: location.hash,
          node: [...fig.querySelectorAll('.node.current')].map(g => g.dataset.vertex),
          selected: [...fig.querySelectorAll('.node.selected')].map(g => g.dataset.vertex),
          step_lines: [...pre.querySelectorAll('.ln.step')].map(l => l.textContent.trim()),
          sel_lines: [...pre.querySelectorAll('.ln.sel')].map(l => l.textContent.trim()),
          grads: [...fig.querySelectorAll('text.grad')].filter(shown).map(t => t.textContent),
          values: [...fig.querySelectorAll('text.value')].filter(shown).map(t => t.textContent),
        };""")


def severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_loads_without_errors_and_steps_with_the_arrow_keys(browser, sigmoid_page):
    from selenium.webdriver.common.keys import Keys

    d = open_page(browser, sigmoid_page)
    start = current(d)
    assert start["counter"] == f"step 0 of {LAST}"
    assert start["node"] == [] and start["grads"] == []
    assert sorted(start["values"]) == ["-1.00", "-2.00", "-3.00", "-3.00", "2.00"]
    press(d, Keys.ARROW_RIGHT)
    first = current(d)
    assert first["counter"] == f"step 1 of {LAST}" and first["hash"].endswith("step=1")
    assert first["caption"].startswith("Forward 1 of 8: × gives")
    assert len(first["node"]) == 1
    press(d, Keys.ARROW_RIGHT)
    second = current(d)
    assert len(second["node"]) == 1 and second["node"] != first["node"]
    press(d, Keys.ARROW_LEFT)
    assert current(d)["node"] == first["node"]
    press(d, Keys.END)
    assert current(d)["counter"] == f"step {LAST} of {LAST}"
    press(d, Keys.HOME)
    assert current(d)["counter"] == f"step 0 of {LAST}"
    assert severe(d) == []


def test_the_lecture_numbers_appear_at_their_steps(browser, sigmoid_page):
    d = open_page(browser, sigmoid_page, f"#stage=source&step={FORWARD - 1}")
    before = current(d)
    assert "0.73" not in before["values"] and "1.37" in before["values"]
    d = open_page(browser, sigmoid_page, f"#stage=source&step={FORWARD}")
    forward = current(d)
    assert "0.73" in forward["values"] and forward["grads"] == []
    assert forward["step_lines"][0].startswith("f = 1/add2")
    d = open_page(browser, sigmoid_page, f"#stage=source&step={SEED}")
    assert current(d)["grads"] == ["1.00"]
    d = open_page(browser, sigmoid_page, f"#stage=source&step={LAST - 1}")
    almost = current(d)
    assert "-0.39" in almost["grads"] and "-0.59" in almost["grads"]
    assert "0.39" not in almost["grads"]
    d = open_page(browser, sigmoid_page, f"#stage=source&step={LAST}")
    last = current(d)
    assert sorted(last["grads"]) == sorted(["-0.20", "0.39", "-0.39", "-0.59", "0.20", "0.20",
                                            "0.20", "0.20", "0.20", "-0.20", "-0.53", "-0.53",
                                            "1.00"])
    assert "∂f/∂w0 x0 = -1.00 × 0.20 = -0.20" in " ".join(last["caption"].split())
    assert [ln.split("=")[0].strip() for ln in last["step_lines"]] == ["d_w0", "d_x0"]
    assert severe(d) == []


def test_clicking_a_node_highlights_its_line_and_a_line_its_node(browser, sigmoid_page):
    from selenium.webdriver.common.by import By

    d = open_page(browser, sigmoid_page, "#stage=source&step=0")
    d.find_element(By.CSS_SELECTOR, '.figure:not([hidden]) [data-vertex="n12"]').click()
    shown = current(d)
    assert shown["selected"] == ["n12"]
    assert [ln.split("#")[0].strip() for ln in shown["sel_lines"]] == ["f = 1/add2"]
    line = next(e for e in d.find_elements(By.CSS_SELECTOR, ".code:not([hidden]) .ln")
                if e.text.strip().startswith("dot = add1 + w2"))
    line.click()
    assert current(d)["selected"] == ["n8"]
    d.find_element(By.CSS_SELECTOR, '[role=tab][data-stage="2"]').click()
    optimized = current(d)
    assert optimized["hash"].startswith("#stage=optimized") and optimized["selected"] == []
    d.find_element(By.CSS_SELECTOR, '.figure:not([hidden]) [data-vertex="n5"]').click()
    assert [ln.split("#")[0].strip() for ln in current(d)["sel_lines"]] == \
        ["f = sigmoid(w2 + w0*x0 + w1*x1)"]
    assert severe(d) == []


def test_a_1280x720_screenshot_shows_the_figure_and_presentation_hides_the_code(
        browser, sigmoid_page):
    from PIL import Image

    d = open_page(browser, sigmoid_page, f"#step={LAST}")
    assert d.execute_script("return [innerWidth, innerHeight]") == [1280, 720]
    image = Image.open(io.BytesIO(d.get_screenshot_as_png())).convert("RGB")
    assert image.size == (1280, 720)
    colors = image.getcolors(maxcolors=1 << 20)
    white = max(colors)[0] / (1280 * 720)
    assert len(colors) > 200 and white < 0.95, (len(colors), white)
    orange = sum(n for n, (r, g, b) in colors if r > 200 and 100 < g < 160 and b < 60)
    assert orange > 200, "the current node and step's gradients are highlighted"
    press(d, "f")
    assert d.execute_script(
        "return [document.body.classList.contains('present'),"
        " getComputedStyle(document.getElementById('code-panel')).display]") == [True, "none"]
    assert severe(d) == []


def test_the_page_makes_no_request(browser, sigmoid_page):
    d = open_page(browser, sigmoid_page, "#step=3")
    press(d, "\ue014", 5)  # arrow right
    requests = d.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert requests == []
    assert d.execute_script("return document.querySelectorAll('svg').length") == 3
    assert severe(d) == []


def test_a_network_expands_a_layer_when_clicked(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from graphc.cli.main import figure_feeds

    ex = example("mlp_digits")
    path = tmp_path / "mlp.html"
    view(ex.outputs, figure_feeds(ex), path=path, title="mlp_digits")
    d = open_page(browser, str(path))
    boxes = d.find_elements(By.CSS_SELECTOR, ".figure:not([hidden]) .node")
    d.find_element(By.CSS_SELECTOR, '.figure:not([hidden]) [data-vertex="g0"]').click()
    assert current(d)["hash"].endswith("layers=2")
    expanded = d.find_elements(By.CSS_SELECTOR, ".figure:not([hidden]) .node")
    assert len(expanded) > len(boxes)
    press(d, "\ue014", 3)
    assert "relu" in current(d)["caption"]
    assert severe(d) == []
