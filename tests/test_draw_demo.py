"""The draw-a-digit demo (``code/draw_demo.py``): its server and its page.

The server runs as a real process on a free port of 127.0.0.1 and answers
real HTTP requests. For the HTTP tests its model is written here with random
weights, instantly: they check the answers' form and arithmetic (against a
numpy forward pass of the same weights), not whether digits are recognised.

The browser test drives Debian's ``chromium`` (``apt-get install chromium
chromium-driver``) through selenium: it draws a 1 and a 0 on the canvas with
the mouse and reads the page's predictions, from a LeNet trained here on the
real MNIST for 400 minibatches of 50 (about 40 s on the project's 2-core
machine). It is skipped, with one reason line, where selenium, chromium or
the real MNIST is missing. The whole file takes about a minute there.
"""
import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy
import pytest

from conftest import CODE

pytest.importorskip("PIL.Image")

import digit_image  # noqa: E402
from convolutional_mlp import PARAM_NAMES, network_settings  # noqa: E402
from saved_model import save_model  # noqa: E402
from nnet_reference import lenet_reference  # noqa: E402
from test_predict import STROKES, draw_digit  # noqa: E402

#: The line draw_demo.py prints once it serves.
ADDRESS = re.compile(r"draw a digit at (http://[\d.]+:(\d+)/)")

#: The filter counts of the random model (small: quick to compile).
NKERNS = (2, 3)


# ---------------------------------------------------------------------------
# Helpers: a model, the server process, requests
# ---------------------------------------------------------------------------

def random_model(path, nkerns=NKERNS, seed=0):
    """Write a saved model with random weights; return its arrays."""
    k0, k1 = nkerns
    shapes = {"layer0_W": (k0, 1, 5, 5), "layer0_b": (k0,), "layer1_W": (k1, k0, 5, 5),
              "layer1_b": (k1,), "layer2_W": (k1 * 16, 500), "layer2_b": (500,),
              "layer3_W": (500, 10), "layer3_b": (10,)}
    rng = numpy.random.RandomState(seed)
    arrays = {name: (0.3 * rng.randn(*shapes[name])).astype(numpy.float32)
              for name in PARAM_NAMES}
    save_model(path, "convolutional_mlp", arrays, network_settings(list(nkerns)))
    return arrays


def run_demo(args, cwd, **kwargs):
    """draw_demo.py run to its end (for the runs that must stop at once)."""
    return subprocess.run([sys.executable, str(CODE / "draw_demo.py")] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=120, **kwargs)


class DemoServer:
    """``draw_demo.py --model MODEL --port 0`` in a subprocess, until :meth:`close`."""

    def __init__(self, model, workdir, timeout=180):
        self.out, self.err = workdir / "server.out", workdir / "server.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(CODE / "draw_demo.py"), "--model", str(model),
                 "--port", "0"], cwd=workdir, stdout=out, stderr=err,
                env=dict(os.environ, PYTENSOR_FLAGS="floatX=float32"))
        deadline = time.monotonic() + timeout
        while not (match := ADDRESS.search(self.out.read_text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"the server did not start:\n{self.err.read_text()}")
            time.sleep(0.1)
        self.url, self.port = match.group(1), int(match.group(2))

    def alive(self):
        return self.process.poll() is None

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def raw_request(port, data):
    """Send ``data`` (a whole HTTP request, as bytes) and return the status
    and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the server sees the end of what was sent
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def request(port, method="GET", path="/", body=b"", content_type="application/json"):
    """An HTTP/1.1 request with a Content-Length: (status, headers, body)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": content_type} if method == "POST" else {}
        connection.request(method, path, body=body if method == "POST" else None,
                           headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def png_bytes(image):
    stream = io.BytesIO()
    image.save(stream, "PNG")
    return stream.getvalue()


def as_json(png):
    """The page's request body for a PNG."""
    return json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server with a random model: (server, the model's arrays)."""
    work = tmp_path_factory.mktemp("draw_demo")
    arrays = random_model(work / "model.npz")
    server = DemoServer(work / "model.npz", work)
    yield server, arrays
    server.close()


@pytest.fixture(scope="module")
def seven(tmp_path_factory):
    """A drawn 7 (test_predict.draw_digit): its PNG bytes and prepared digit."""
    path = tmp_path_factory.mktemp("seven") / "seven.png"
    draw_digit(7).save(path)
    return path.read_bytes(), digit_image.read_digit(path)


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

def test_the_page_is_served_and_loads_nothing_from_elsewhere(served):
    server, _ = served
    status, headers, page = request(server.port, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for name, kind in (("draw_demo.js", "text/javascript"), ("draw_demo.css", "text/css")):
        assert f'"{name}"' in page.decode()
        status, headers, body = request(server.port, "GET", "/" + name)
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert body == (CODE / "draw_demo" / name).read_bytes()
    for path in (CODE / "draw_demo").iterdir():  # offline: no other host named
        assert not re.search(r"https?:|//[\w.-]+\.\w+/", path.read_text()), path


def test_a_drawing_is_classified(served, seven):
    server, arrays = served
    png, prepared = seven
    status, _, body = request(server.port, "POST", "/predict", as_json(png))
    assert status == 200, body
    answer = json.loads(body)
    assert set(answer) == {"digit", "probabilities", "input", "layer0", "layer1",
                           "milliseconds"}
    # the picture prepared as digit_image prepares it, through the saved weights
    numpy.testing.assert_allclose(answer["input"], prepared, atol=1e-4)
    expected = lenet_reference(arrays, prepared.reshape(1, 784))[0]
    numpy.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-3, atol=1e-5)
    assert answer["digit"] == int(numpy.argmax(answer["probabilities"]))
    layer0, layer1 = numpy.array(answer["layer0"]), numpy.array(answer["layer1"])
    assert layer0.shape == (NKERNS[0], 12, 12) and layer1.shape == (NKERNS[1], 4, 4)
    assert numpy.abs(layer0).max() <= 1 and numpy.abs(layer1).max() <= 1  # tanh
    assert 0 < answer["milliseconds"] < 1000

    # the picture's own bytes give the same answer
    status, _, raw = request(server.port, "POST", "/predict", png, "image/png")
    assert status == 200
    assert json.loads(raw)["probabilities"] == answer["probabilities"]


def blank_png():
    from PIL import Image

    return png_bytes(Image.new("L", (280, 280), 255))


def huge_png():
    from PIL import Image

    return png_bytes(Image.new("L", (2500, 2500), 255))  # 6 million pixels, 7 kB


#: (what, method, path, content type, body, status, words of the message)
BAD_REQUESTS = [
    ("not JSON", "POST", "/predict", "application/json", b"{image: ", 400, "not JSON"),
    ("JSON without an image", "POST", "/predict", "application/json", b'{"picture": 1}',
     400, '"image"'),
    ("not base64", "POST", "/predict", "application/json",
     b'{"image": "data:image/png;base64,@@@"}', 400, "base64"),
    ("not a picture", "POST", "/predict", "application/json",
     as_json(b"hello, world"), 400, "not a picture"),
    ("not a picture, raw", "POST", "/predict", "image/png", b"\x89PNG\r\n\x1a\n broken",
     400, "picture"),
    ("a blank picture", "POST", "/predict", "image/png", blank_png, 400, "blank"),
    ("too many pixels", "POST", "/predict", "image/png", huge_png, 400, "pixels"),
    ("another path", "POST", "/classify", "application/json", b"{}", 404, "/predict"),
    ("GET the API", "GET", "/predict", None, b"", 405, "POST drawings to /predict"),
    ("another method", "DELETE", "/", None, b"", 405, "DELETE"),
    ("a missing file", "GET", "/secret.txt", None, b"", 404, "nothing at /secret.txt"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx_and_the_server_goes_on(served, seven, case):
    server, _ = served
    _, method, path, content_type, body, status, words = case
    body = body() if callable(body) else body
    body = body.encode() if isinstance(body, str) else body
    got, headers, answer = request(server.port, method, path, body, content_type)
    assert got == status, answer
    assert headers["Content-Type"] == "application/json"
    assert words in json.loads(answer)["error"]
    assert request(server.port, "POST", "/predict", as_json(seven[0]))[0] == 200
    assert server.alive()


def test_uploads_are_refused_from_their_headers(served, seven):
    """Too large, or of no announced length: refused before any body is read."""
    server, _ = served
    status, answer = raw_request(
        server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n")
    assert status == 413 and "limit" in answer["error"]
    status, answer = raw_request(
        server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n")
    assert status == 411 and "Content-Length" in answer["error"]
    status, answer = raw_request(  # announced 1000 bytes, sent 10 and hung up
        server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        b"0123456789")
    assert status == 400 and "ended after 10 of 1000" in answer["error"]
    assert request(server.port, "POST", "/predict", as_json(seven[0]))[0] == 200
    assert server.alive()


def test_without_a_model_one_line_says_how_to_make_one(tmp_path):
    done = run_demo([], tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "no saved model at" in done.stderr
    assert "python code/convolutional_mlp.py" in done.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    random_model(tmp_path / "model.npz")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run_demo(["--model", "model.npz", "--port", str(taken.getsockname()[1])],
                        tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("draw_demo.py: error: cannot listen on 127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1, done.stderr


# ---------------------------------------------------------------------------
# The page in a real browser
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Headless chromium driven by selenium (skipped where either is missing)."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install selenium)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium / chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1100,1000", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options,
                               service=webdriver.ChromeService(executable_path=driver))
    yield session
    session.quit()


#: The browser test's model: 400 minibatches of 50 real digits, about 40 s
#: on the project's machine. It ends at 4.9 % validation error (1,000
#: digits), 6.4 % test error, and reads the test's 1 and 0 with probabilities
#: 0.996 and 0.955 (and test_predict's drawn 2 to 9, each above 0.87).
MNIST_MODEL_ARGS = ["--n-epochs", "1", "--batch-size", "50", "--max-batches", "400,20,20",
                    "--checkpoint", "", "--plots-dir", ""]


@pytest.fixture(scope="module")
def mnist_server(tmp_path_factory, mnist_pkl):
    """A server with a LeNet trained here on the real MNIST (skipped without it)."""
    work = tmp_path_factory.mktemp("mnist_model")
    done = subprocess.run(
        [sys.executable, str(CODE / "convolutional_mlp.py"), "--dataset", mnist_pkl,
         "--model", "model.npz"] + MNIST_MODEL_ARGS, cwd=work, capture_output=True,
        text=True, timeout=600, env=dict(os.environ, PYTENSOR_FLAGS="floatX=float32"))
    assert done.returncode == 0, done.stderr
    server = DemoServer(work / "model.npz", work)
    yield server
    server.close()


def unit_strokes(digit):
    """Strokes of a clear ``digit`` in a unit square: test_predict's 0, and
    for 1 the plain upright bar most people write."""
    return [[(0.52, 0.12), (0.48, 0.88)]] if digit == 1 else STROKES[digit]


def draw_on(driver, canvas, strokes, box=(50, 30, 230, 250)):
    """Draw ``strokes`` (unit square) in ``box`` of the 280 x 280 canvas
    with the mouse: press, move through the points, release, per stroke."""
    from selenium.webdriver.common.action_chains import ActionChains

    left, top, right, bottom = box
    size = canvas.size  # offsets are from the element's centre
    for stroke in strokes:
        points = [(left + x * (right - left) - size["width"] / 2,
                   top + y * (bottom - top) - size["height"] / 2) for x, y in stroke]
        if len(points) == 2:  # a straight line: a few points along it
            (xa, ya), (xb, yb) = points
            points = [(xa + t * (xb - xa), ya + t * (yb - ya)) for t in numpy.linspace(0, 1, 12)]
        chain = ActionChains(driver, duration=5)
        chain.move_to_element_with_offset(canvas, round(points[0][0]), round(points[0][1]))
        chain.click_and_hold()
        for x, y in points[1:]:
            chain.move_to_element_with_offset(canvas, round(x), round(y))
        chain.release().perform()


def read_prediction(driver, answers, timeout=30):
    """The digit the page shows once it has shown ``answers`` answers."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = driver.find_element(By.TAG_NAME, "body")
    WebDriverWait(driver, timeout).until(
        lambda _: int(body.get_attribute("data-answers")) >= answers)
    return int(driver.find_element(By.ID, "digit").text)


def test_draw_a_1_and_a_0_in_a_real_browser(browser, mnist_server):
    from selenium.webdriver.common.by import By

    browser.get(mnist_server.url)
    canvas = browser.find_element(By.ID, "pad")
    draw_on(browser, canvas, unit_strokes(1))
    assert read_prediction(browser, 1) == 1
    # the bars, the input and the maps of both layers are drawn
    best = browser.find_element(By.CSS_SELECTOR, ".bar.best")
    assert best.get_attribute("id") == "bar-1"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#layer0 canvas")) == 20
    assert len(browser.find_elements(By.CSS_SELECTOR, "#layer1 canvas")) == 50

    # the 0 light on dark (switching clears the canvas)
    browser.find_element(By.ID, "chalk").click()
    assert browser.find_element(By.ID, "digit").text == ""
    draw_on(browser, canvas, unit_strokes(0))
    assert read_prediction(browser, 2) == 0
    assert browser.find_element(By.ID, "message").text == ""
