// The comparison viewer's behaviour: the body of gr.HTML's js_on_load (given `element` and `watch` by Gradio).
//
// One camera drives every view of the viewer (.srv): the image point at the centre of each view (cx, cy, in image
// pixels) and the magnification m (device pixels per image pixel; 1 is 1:1). Views differ only in size, so panning
// or zooming one moves them all. Every image is placed with a CSS transform snapped to whole device pixels, so at
// 1:1 the screen shows the PNG's pixels unchanged. Keys 1–9 show image 1–9 in the main view, 0 fits, F toggles full
// screen, + and - zoom about the centre, S toggles the split view.
//
// The split view shows a second image (the right one) in the main view on top of the main image (the left one), cut
// at the divider with a clip-path in its own coordinates: both images keep one transform, so both halves always show
// the same region.
const MAX_MAGNIFICATION = 16;
const WHEEL_SPEED = 0.0015; // magnification factor exp(-speed × wheel pixels)
const LINE_PIXELS = 16; // wheel deltas given in lines
const CLICK_SLOP = 4; // CSS pixels a pointer may move and still count as a click

let camera = null; // {cx, cy, m, fitted}
const observer = new ResizeObserver(() => render());
const pointers = new Map(); // pointerId -> {x, y}
let gesture = null; // {moved, view}
let split = null; // {right, at} while split: the right image's index, the divider's position (0–1 of the main view)
let dividing = null; // the pointerId that drags the divider
const SPLIT_STEP = 0.02; // the divider's move per arrow key (0.1 with Shift)

const root = () => element.querySelector(".srv");
const imageSize = (r) => [Number(r.dataset.width), Number(r.dataset.height)];
const cssScale = () => camera.m / window.devicePixelRatio;

function fitMagnification(r) {
  const main = r.querySelector(".srv-main");
  const [width, height] = imageSize(r);
  return (Math.min(main.clientWidth / width, main.clientHeight / height) || 1) * window.devicePixelRatio;
}

function clampCamera(r) {
  const [width, height] = imageSize(r);
  const least = Math.min(fitMagnification(r), 1);
  camera.m = Math.min(MAX_MAGNIFICATION, Math.max(least, camera.m));
  camera.cx = Math.min(width, Math.max(0, camera.cx));
  camera.cy = Math.min(height, Math.max(0, camera.cy));
}

function render() {
  const r = root();
  if (!r || !camera) return;
  if (camera.fitted) camera.m = fitMagnification(r);
  clampCamera(r);
  const dpr = window.devicePixelRatio;
  const scale = cssScale();
  let mainLeft = 0;
  for (const view of r.querySelectorAll(".srv-view")) {
    const box = view.getBoundingClientRect();
    // The image's top-left corner on screen, on a whole device pixel, relative to where the view's content is
    // painted: Chromium paints it at the view's position rounded to whole CSS pixels.
    const left = Math.round((box.left + box.width / 2 - camera.cx * scale) * dpr) / dpr - Math.round(box.left);
    const top = Math.round((box.top + box.height / 2 - camera.cy * scale) * dpr) / dpr - Math.round(box.top);
    for (const img of view.querySelectorAll("img")) {
      img.style.transform = `translate(${left}px, ${top}px) scale(${scale})`;
    }
    if (view.classList.contains("srv-main")) mainLeft = left;
  }
  renderSplit(r, mainLeft);
  // The box the main view shows, for the Export figure button: its centre and the side of the largest square in it
  // in image pixels, and the magnification (device pixels per image pixel).
  const main = r.querySelector(".srv-main");
  const side = Math.min(main.clientWidth, main.clientHeight) / scale;
  Object.assign(r.dataset, {cx: camera.cx, cy: camera.cy, side, magnification: camera.m});
  r.classList.toggle("srv-magnified", camera.m >= 1);
  const one = Math.abs(camera.m - 1) < 1e-9;
  r.querySelector(".srv-zoom").textContent = one ? "1:1" : `${Math.round(camera.m * 100)}%`;
  r.querySelector("[data-act=one]").setAttribute("aria-pressed", String(one));
  r.querySelector("[data-act=fit]").setAttribute("aria-pressed", String(camera.fitted));
}

// The split view: the right image, its label and scale, and the divider (or none of them when not split).
function renderSplit(r, imageLeft) {
  const main = r.querySelector(".srv-main");
  const [width] = imageSize(r);
  r.classList.toggle("srv-split", split !== null);
  r.querySelector("[data-act=split]").setAttribute("aria-pressed", String(split !== null));
  for (const item of r.querySelectorAll(".srv-main [data-index], .srv-strip .srv-view")) {
    item.classList.toggle("srv-right", split !== null && Number(item.dataset.index) === split.right);
  }
  for (const img of main.querySelectorAll("img")) {
    const right = img.classList.contains("srv-right");
    // Cut at the divider, in the image's own pixels (its transform maps x to imageLeft + x × scale); the other edges
    // lie outside the image, or a layout position between pixels would cut into its edge pixels.
    const cut = right ? Math.min(width, Math.max(0, (split.at * main.clientWidth - imageLeft) / cssScale())) : 0;
    img.style.clipPath = right ? `inset(-50% -50% -50% ${cut}px)` : "";
  }
  if (!split) return;
  const divider = main.querySelector(".srv-divider");
  divider.style.left = `${split.at * 100}%`;
  divider.setAttribute("aria-valuenow", String(Math.round(split.at * 100)));
  r.querySelector("select[data-side=right]").value = String(split.right);
}

function moveDivider(at) {
  split.at = Math.min(1, Math.max(0, at));
  render();
}

function show(index) {
  const r = root();
  if (!r || index < 0 || index >= r.querySelectorAll(".srv-strip .srv-view").length) return;
  r.dataset.main = String(index);
  for (const item of r.querySelectorAll("[data-index]")) {
    item.classList.toggle("srv-shown", Number(item.dataset.index) === index);
  }
  r.querySelector("select[data-side=left]").value = String(index);
}

function zoomAt(view, clientX, clientY, magnification) {
  const r = root();
  const box = view.getBoundingClientRect();
  const dx = clientX - (box.left + box.width / 2);
  const dy = clientY - (box.top + box.height / 2);
  const before = cssScale();
  const x = camera.cx + dx / before; // the image point under the pointer stays there
  const y = camera.cy + dy / before;
  camera.fitted = false;
  camera.m = magnification;
  clampCamera(r);
  camera.cx = x - dx / cssScale();
  camera.cy = y - dy / cssScale();
  render();
}

function zoomCentre(factor) {
  const view = root().querySelector(".srv-main");
  const box = view.getBoundingClientRect();
  zoomAt(view, box.left + box.width / 2, box.top + box.height / 2, camera.m * factor);
}

function fit() {
  const [width, height] = imageSize(root());
  camera = {cx: width / 2, cy: height / 2, m: 1, fitted: true};
  render();
}

function act(action) {
  const r = root();
  if (!camera) return;
  if (action === "fit") fit();
  else if (action === "one") {
    camera.fitted = false;
    camera.m = 1;
    render();
  } else if (action === "split") {
    const count = r.querySelectorAll(".srv-strip .srv-view").length;
    split = split ? null : {right: (Number(r.dataset.main) + 1) % count, at: 0.5};
    render();
  } else if (action === "in") zoomCentre(2);
  else if (action === "out") zoomCentre(0.5);
  else if (action === "full") {
    if (document.fullscreenElement) document.exitFullscreen();
    else r.requestFullscreen();
  }
}

function start() {
  const r = root();
  camera = null;
  split = null;
  dividing = null;
  pointers.clear();
  observer.disconnect();
  if (!r) return;
  show(Number(r.dataset.main));
  fit();
  observer.observe(r);
}

element.addEventListener("click", (event) => {
  const button = event.target.closest("[data-act]");
  if (button) act(button.dataset.act);
});

// The two selects of the split view: the left one picks the main view's image, the right one the other.
element.addEventListener("change", (event) => {
  const side = event.target.dataset?.side;
  if (!side || !camera) return;
  if (side === "left") show(Number(event.target.value));
  else if (split) split.right = Number(event.target.value);
  render();
});

// Arrow keys (Shift: further), Home and End move the focused divider.
element.addEventListener("keydown", (event) => {
  if (!split || !event.target.closest?.(".srv-divider")) return;
  const step = event.shiftKey ? 5 * SPLIT_STEP : SPLIT_STEP;
  const moves = {ArrowLeft: split.at - step, ArrowRight: split.at + step, Home: 0, End: 1};
  if (!(event.key in moves)) return;
  event.preventDefault();
  moveDivider(moves[event.key]);
});

element.addEventListener(
  "wheel",
  (event) => {
    const view = event.target.closest(".srv-view");
    if (!view || !camera) return;
    event.preventDefault();
    const pixels = event.deltaMode === 1 ? event.deltaY * LINE_PIXELS : event.deltaY;
    zoomAt(view, event.clientX, event.clientY, camera.m * Math.exp(-pixels * WHEEL_SPEED));
  },
  {passive: false},
);

element.addEventListener("pointerdown", (event) => {
  const divider = event.target.closest(".srv-divider");
  if (divider && split && event.button === 0) {
    divider.setPointerCapture(event.pointerId);
    dividing = event.pointerId;
    return;
  }
  const view = event.target.closest(".srv-view");
  if (!view || !camera || event.button > 0 || event.target.closest("a")) return;
  view.setPointerCapture(event.pointerId);
  pointers.set(event.pointerId, {x: event.clientX, y: event.clientY});
  if (pointers.size === 1) gesture = {moved: 0, view};
  view.classList.add("srv-dragging");
});

element.addEventListener("pointermove", (event) => {
  if (event.pointerId === dividing) {
    const box = root().querySelector(".srv-main").getBoundingClientRect();
    moveDivider((event.clientX - box.left) / box.width);
    return;
  }
  const last = pointers.get(event.pointerId);
  if (!last || !camera) return;
  const [other] = [...pointers].filter(([id]) => id !== event.pointerId).map(([, point]) => point);
  const now = {x: event.clientX, y: event.clientY};
  gesture.moved += Math.hypot(now.x - last.x, now.y - last.y);
  pointers.set(event.pointerId, now);
  if (other) {
    // Two fingers: zoom by the change of their distance about their midpoint.
    const ratio = Math.hypot(now.x - other.x, now.y - other.y) / Math.hypot(last.x - other.x, last.y - other.y);
    zoomAt(gesture.view, (now.x + other.x) / 2, (now.y + other.y) / 2, camera.m * (ratio || 1));
    return;
  }
  camera.fitted = false;
  camera.cx -= (now.x - last.x) / cssScale();
  camera.cy -= (now.y - last.y) / cssScale();
  render();
});

function release(event) {
  if (event.pointerId === dividing) dividing = null;
  if (!pointers.delete(event.pointerId)) return;
  event.target.closest(".srv-view")?.classList.remove("srv-dragging");
  if (pointers.size || !gesture) return;
  const inStrip = gesture.view.closest(".srv-strip");
  if (event.type === "pointerup" && gesture.moved < CLICK_SLOP && inStrip) show(Number(gesture.view.dataset.index));
  gesture = null;
}
element.addEventListener("pointerup", release);
element.addEventListener("pointercancel", release);

element.addEventListener("dblclick", (event) => {
  const view = event.target.closest(".srv-view");
  if (!view || !camera || event.target.closest(".srv-divider")) return;
  if (Math.abs(camera.m - 1) < 1e-9) fit();
  else zoomAt(view, event.clientX, event.clientY, 1);
});

// One key handler for the page; it serves whichever viewer is on screen (Gradio may mount a viewer again).
window.srLabViewers = window.srLabViewers || new Set();
window.srLabViewers.add({element, show, act});
const onScreen = (r) => r && (r.offsetParent !== null || document.fullscreenElement === r);
if (!window.srLabViewerKeys) {
  window.srLabViewerKeys = true;
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable)) return;
    for (const viewer of window.srLabViewers) {
      if (!viewer.element.isConnected) window.srLabViewers.delete(viewer);
      else if (onScreen(viewer.element.querySelector(".srv"))) {
        const actions = {"0": "fit", f: "full", F: "full", s: "split", S: "split", "+": "in", "=": "in", "-": "out"};
        if (/^[1-9]$/.test(event.key)) viewer.show(Number(event.key) - 1);
        else if (actions[event.key]) viewer.act(actions[event.key]);
        else return;
        event.preventDefault();
        return;
      }
    }
  });
}

watch("value", start);
start();
