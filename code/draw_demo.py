"""Draw a digit in the browser and watch the trained LeNet read it.

::

    python code/draw_demo.py [--model PATH] [--port N] [--host H]

serves a page (``code/draw_demo/``: plain HTML, CSS and JavaScript, nothing
from another host) with a canvas to draw on. After each stroke the page
sends the drawing to this server, which prepares it as MNIST's digits were
(:mod:`digit_image`, as ``--predict`` does) and runs the saved LeNet
(:mod:`saved_model`, the file ``convolutional_mlp.py`` writes), compiled
once at start for one picture at a time.

The one request that computes::

    POST /predict
    Content-Type: application/json
    {"image": "data:image/png;base64,..."}     (or bare base64)

or the picture's own bytes with ``Content-Type: image/png`` (any format
Pillow reads), e.g. ``curl --data-binary @seven.png -H 'Content-Type:
image/png' http://127.0.0.1:8000/predict``. The answer is JSON::

    {"digit": 7,                      # the most probable class
     "probabilities": [10 floats],
     "input": 28 x 28 values in [0, 1)   (the prepared picture, ink light),
     "layer0": 20 maps of 12 x 12, "layer1": 50 maps of 4 x 4,
                                      # both in [-1, 1] (after pool and tanh)
     "milliseconds": 12.3}            # the server's time for this answer

A bad request (no or too large Content-Length, malformed JSON, not a
picture, a blank picture, an unknown path or method) gets a 4xx status and
``{"error": "one line"}``; the server goes on serving.
"""
import argparse
import base64
import binascii
import http.server
import io
import json
import os
import sys
import threading
import time
import warnings

import command_line

if __name__ == "__main__":
    # before PyTensor reads PYTENSOR_FLAGS (it answers bad ones with a traceback)
    command_line.exit_on_bad_flags("draw_demo.py")

import numpy

from digit_image import ImageError, grey_levels, prepare_digit
from errors import CheckpointMismatchError, ConfigError
from saved_model import check_network, load_model, set_parameters

__all__ = ["Classifier", "DemoHandler", "MAX_BODY", "MAX_PIXELS", "decode_picture",
           "main", "make_server", "warm_up"]

#: The page's files, by URL path: (file in code/draw_demo/, Content-Type).
PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "draw_demo")
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/draw_demo.js": ("draw_demo.js", "text/javascript; charset=utf-8"),
    "/draw_demo.css": ("draw_demo.css", "text/css; charset=utf-8"),
}

#: Largest request body read, in bytes. The page's 280 x 280 canvas is a
#: PNG of 5-30 kB (a third more in base64); anything far larger is refused
#: from its Content-Length, before it is read.
MAX_BODY = 2 * 1024 * 1024

#: Largest picture decoded, in pixels (checked from its header, so that a
#: small file cannot unpack into a huge image).
MAX_PIXELS = 4_000_000


class RequestError(Exception):
    """A request this server refuses: an HTTP status and a one-line message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------

class Classifier:
    """The saved LeNet, compiled once for a minibatch of one picture.

    Built as :func:`convolutional_mlp.predict` builds it (the same
    ``build_layers`` given the saved parameters), but compiled once, so that
    each drawing costs only the forward pass.

    Raises
    ------
    errors.CheckpointError
        For a missing or unreadable model, or one of another network.
    """

    def __init__(self, model_file):
        meta, arrays = load_model(model_file, "convolutional_mlp")
        # Imported only now: a missing model is told at once, not after the
        # seconds PyTensor takes to load.
        import pytensor
        import pytensor.tensor as pt

        from convolutional_mlp import PARAM_NAMES, build_layers, network_settings

        nkerns = meta["network"].get("nkerns")
        if not (isinstance(nkerns, list) and len(nkerns) == 2
                and all(type(k) is int and k >= 1 for k in nkerns)):
            raise CheckpointMismatchError(f"{model_file} records no valid nkerns: {nkerns!r}")
        check_network(model_file, meta["network"], network_settings(nkerns))
        x = pt.matrix("x")
        layer0, layer1, layer2, layer3 = build_layers(numpy.random.RandomState(0), x, 1, nkerns)
        params = layer3.params + layer2.params + layer1.params + layer0.params
        set_parameters(model_file, params, PARAM_NAMES, arrays)
        self.function = pytensor.function(
            [x], [layer3.p_y_given_x, layer0.input, layer0.output, layer1.output])
        self.dtype = pytensor.config.floatX
        self.nkerns = nkerns
        self.training = meta.get("training", {})
        # a compiled function keeps its buffers between calls: one call at a time
        self.lock = threading.Lock()

    def classify(self, digit):
        """The probabilities, input and maps of both layers for one prepared
        ``(28, 28)`` digit, as the JSON-ready dict of the module's docstring."""
        with self.lock:
            outputs = self.function(numpy.asarray(digit, dtype=self.dtype).reshape(1, 784))
        probabilities, net_input, maps0, maps1 = (numpy.asarray(o[0], numpy.float64)
                                                  for o in outputs)
        return {
            "digit": int(probabilities.argmax()),
            "probabilities": probabilities.tolist(),
            # rounded: 3 decimals are more than a grey level shows, and keep
            # the answer around 30 kB
            "input": net_input[0].round(4).tolist(),
            "layer0": maps0.round(3).tolist(),
            "layer1": maps1.round(3).tolist(),
        }


def decode_picture(data):
    """Prepare an uploaded picture (its file's bytes) as MNIST's digits were.

    The reading is :func:`digit_image.read_digit`'s, from memory; the
    preparation is :func:`digit_image.prepare_digit`.

    Raises
    ------
    digit_image.ImageError
        If the bytes are not a picture Pillow reads, or it is too large or
        blank.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(f"the picture is {image.width} x {image.height} pixels; "
                                     f"at most {MAX_PIXELS:,} are read")
                image.load()
                values = grey_levels(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("the upload is not a picture (PNG, JPEG ...) Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError,
            SyntaxError) as exc:  # truncated or damaged files
        raise ImageError(f"cannot read the picture ({type(exc).__name__}: {exc})") from None
    return prepare_digit(values, name="the drawing")


def warm_up(classifier):
    """Answer one drawing before serving: the first call compiles Numba's
    kernels and imports Pillow and scipy (seconds here), which the reader's
    first stroke should not wait for."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (56, 56), 255)
    ImageDraw.Draw(image).line([(28, 8), (28, 48)], fill=0, width=5)
    stream = io.BytesIO()
    image.save(stream, "PNG")
    classifier.classify(decode_picture(stream.getvalue()))


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

class DemoHandler(http.server.BaseHTTPRequestHandler):
    """Serves the page (GET) and answers drawings (POST /predict)."""

    server_version = "LeNetDrawDemo/1"
    #: seconds a client may stall; one that stops sending mid-body does not
    #: hold a thread for ever
    timeout = 20

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/predict":
            self.refuse_method()
            return
        if path not in STATIC:
            self.send_json(404, {"error": f"nothing at {path}: the page is at /"})
            return
        name, content_type = STATIC[path]
        with open(os.path.join(PAGE_DIR, name), "rb") as stream:
            body = stream.read()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        start = time.perf_counter()
        path = self.path.split("?", 1)[0]
        try:
            if path in STATIC:
                raise RequestError(405, f"POST goes to /predict, not {path}")
            if path != "/predict":
                raise RequestError(404, f"nothing at {path}: POST drawings to /predict")
            answer = self.server.classifier.classify(decode_picture(self.read_picture()))
        except RequestError as exc:
            self.send_json(exc.status, {"error": str(exc)})
        except ImageError as exc:
            self.send_json(400, {"error": str(exc)})
        except Exception as exc:  # a bug here: say so, log it, and keep serving
            self.log_error("failed on %s: %r", self.path, exc)
            self.send_json(500, {"error": f"the server failed ({type(exc).__name__}: {exc})"})
        else:
            answer["milliseconds"] = round(1000 * (time.perf_counter() - start), 1)
            self.send_json(200, answer)

    def __getattr__(self, name):
        # http.server looks up do_<METHOD> and answers 501 (a server error,
        # in HTML) when it is missing: refuse any other method as a 405.
        if name.startswith("do_"):
            return self.refuse_method
        raise AttributeError(name)

    def refuse_method(self):
        self.send_json(405, {"error": f"{self.command} {self.path} is not served: GET the "
                             "page at /, POST drawings to /predict"},
                       {"Allow": "POST" if self.path.startswith("/predict") else "GET"})

    def read_picture(self):
        """The picture's bytes from the request body (see the module's docstring)."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "the request needs a Content-Length header")
        try:
            length = int(length)
        except ValueError:
            length = -1
        if length < 0:
            raise RequestError(400, "the Content-Length header is not a byte count")
        if length > MAX_BODY:
            self.close_connection = True  # the body is left unread
            raise RequestError(413, f"the upload is {length:,} bytes; the limit is "
                               f"{MAX_BODY:,}")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise RequestError(408, "the body did not arrive in time") from None
        if len(body) < length:
            raise RequestError(400, f"the body ended after {len(body)} of {length} bytes")
        if self.headers.get_content_type().startswith("image/"):
            return body
        try:
            request = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, and bytes that are not UTF-8
            raise RequestError(400, f"the body is not JSON ({exc}); send "
                               '{"image": "data:image/png;base64,..."} or the picture '
                               "itself with Content-Type: image/png") from None
        if not isinstance(request, dict) or not isinstance(request.get("image"), str):
            raise RequestError(400, 'expected JSON {"image": "data:image/png;base64,..."}')
        text = request["image"]
        if text.startswith("data:"):
            header, _, text = text.partition(",")
            if not header.endswith(";base64"):
                raise RequestError(400, "the image's data URL is not base64")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "the image is not valid base64") from None

    def send_json(self, status, document, headers=None):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def make_server(host, port):
    """A :class:`http.ThreadingHTTPServer` bound to ``host:port`` (0: any
    free port), serving :class:`DemoHandler`; its ``classifier`` is set later.

    Raises
    ------
    errors.ConfigError
        If the address cannot be bound (port in use, unknown host ...).
    """
    try:
        server = http.server.ThreadingHTTPServer((host, port), DemoHandler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    server.daemon_threads = True  # Ctrl-C does not wait for open connections
    server.classifier = None
    return server


def port_number(text):
    """argparse type: a TCP port, 0 to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_line.OneLineErrorParser(
        prog="draw_demo.py",
        description="Draw a digit in the browser and watch the trained LeNet "
        "(convolutional_mlp.py's saved model) read it: a local web server.")
    parser.add_argument(
        "--model", metavar="PATH",
        default=os.path.join(os.getcwd(), "convolutional_mlp_model.npz"),
        help="the model convolutional_mlp.py saved (default: convolutional_mlp_model.npz "
        "in the working folder)")
    parser.add_argument("--port", type=port_number, default=8000,
                        help="port to listen on (default: %(default)s; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    args = parser.parse_args(argv)

    def run():
        if not os.path.isfile(args.model):  # one line, before anything loads
            raise ConfigError(
                f"no saved model at {args.model}; make one (a few minutes) with: "
                "PYTENSOR_FLAGS=floatX=float32 python code/convolutional_mlp.py --n-epochs 5 "
                "(or give one with --model PATH)")
        server = make_server(args.host, args.port)
        print(f"... loading {args.model} and compiling the prediction function", flush=True)
        try:
            server.classifier = Classifier(args.model)
            warm_up(server.classifier)
            record = server.classifier.training
            if "test_error" in record:
                print(f"the model's test error: {100 * record['test_error']:.2f} %")
            host, port = server.server_address[:2]
            print(f"draw a digit at http://{host}:{port}/ (Ctrl-C stops the server)",
                  flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        finally:
            server.server_close()

    return command_line.run_main(run, argv, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
