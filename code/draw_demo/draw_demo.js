// The draw demo's page (code/draw_demo.py): draw on the canvas with pointer
// events (mouse, pen or finger); after each stroke the drawing goes to
// POST /predict as a PNG data URL, and the answer (probabilities, the
// prepared 28x28 input, the maps of both convolution layers) is shown.
// body.dataset.answers counts the answers shown (the browser test waits on it).
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const chalk = document.getElementById("chalk");
const PEN = 18;  // px on the 280 px canvas: about MNIST's stroke, once scaled to 20 px

let drawing = false;
let inked = false;     // anything drawn since the last clear
let sent = 0;          // requests sent; only the latest one's answer is shown
let answers = 0;

// Paper and ink: either polarity works, the server inverts dark-on-light
// drawings (digit_image.prepare_digit) as MNIST's digits are light on dark.
function colours() {
  return chalk.checked ? ["#000", "#fff"] : ["#fff", "#111"];
}

function clearPad() {
  ctx.fillStyle = colours()[0];  // opaque paper: the PNG has no transparency
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  sent += 1;  // an answer still on its way is for the old drawing
  showAnswer(null);
}

// The pointer's position in canvas pixels (inside the border; the canvas
// may be shown scaled).
function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left - pad.clientLeft) * pad.width / pad.clientWidth,
          (event.clientY - box.top - pad.clientTop) * pad.height / pad.clientHeight];
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  inked = true;
  const [x, y] = point(event);
  ctx.strokeStyle = colours()[1];
  ctx.lineWidth = PEN;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x, y);  // a tap leaves a dot
  ctx.stroke();
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  // coalesced events: every point the pointer passed, not only one per frame
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const [x, y] = point(e);
    ctx.lineTo(x, y);
  }
  ctx.stroke();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  predict();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);
chalk.addEventListener("change", clearPad);

async function predict() {
  if (!inked) return;
  const ticket = ++sent;
  const message = document.getElementById("message");
  try {
    const response = await fetch("predict", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image: pad.toDataURL("image/png")}),
    });
    const answer = await response.json();
    if (ticket !== sent) return;  // a newer stroke or a clear came meanwhile
    if (!response.ok) {
      showAnswer(null);
      message.textContent = answer.error || `the server answered ${response.status}`;
      return;
    }
    message.textContent = "";
    showAnswer(answer);
  } catch (error) {
    if (ticket === sent) message.textContent = `no answer from the server (${error})`;
  }
}

// ---------------------------------------------------------------------------
// Showing the answer
// ---------------------------------------------------------------------------

const bars = document.getElementById("bars");
const barFills = [];
const barValues = [];
for (let digit = 0; digit < 10; digit++) {
  const label = document.createElement("span");
  label.textContent = digit;
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.id = `bar-${digit}`;
  const fill = document.createElement("div");
  bar.appendChild(fill);
  const value = document.createElement("span");
  value.className = "value";
  bars.append(label, bar, value);
  barFills.push(fill);
  barValues.push(value);
}

// One map (rows of numbers) drawn in grey on a canvas of its own size:
// `low` black, `high` white; CSS enlarges it without blurring.
function drawMap(canvas, rows, low, high) {
  const height = rows.length, width = rows[0].length;
  canvas.width = width;
  canvas.height = height;
  const c = canvas.getContext("2d");
  const image = c.createImageData(width, height);
  for (let i = 0; i < height; i++) {
    for (let j = 0; j < width; j++) {
      const grey = Math.round(255 * Math.min(1, Math.max(0, (rows[i][j] - low) / (high - low))));
      const k = 4 * (i * width + j);
      image.data[k] = image.data[k + 1] = image.data[k + 2] = grey;
      image.data[k + 3] = 255;
    }
  }
  c.putImageData(image, 0, 0);
}

function drawMaps(container, maps) {
  while (container.children.length > maps.length) container.lastChild.remove();
  while (container.children.length < maps.length) {
    const canvas = document.createElement("canvas");
    canvas.className = "pixels";
    container.appendChild(canvas);
  }
  maps.forEach((rows, k) => drawMap(container.children[k], rows, -1, 1));
}

function showAnswer(answer) {
  const probabilities = answer ? answer.probabilities : new Array(10).fill(0);
  probabilities.forEach((p, digit) => {
    barFills[digit].style.width = `${(100 * p).toFixed(1)}%`;
    barFills[digit].parentNode.classList.toggle("best", answer !== null && digit === answer.digit);
    barValues[digit].textContent = answer ? `${(100 * p).toFixed(1)} %` : "";
  });
  document.getElementById("digit").textContent = answer ? answer.digit : "";
  document.getElementById("probability").textContent =
    answer ? `(probability ${probabilities[answer.digit].toFixed(3)})` : "";
  const input = document.getElementById("input");
  if (answer) {
    drawMap(input, answer.input, 0, 1);
    drawMaps(document.getElementById("layer0"), answer.layer0);
    drawMaps(document.getElementById("layer1"), answer.layer1);
    answers += 1;
    document.body.dataset.answers = answers;
  } else {
    input.getContext("2d").clearRect(0, 0, input.width, input.height);
    drawMaps(document.getElementById("layer0"), []);
    drawMaps(document.getElementById("layer1"), []);
  }
}

document.body.dataset.answers = 0;
clearPad();
