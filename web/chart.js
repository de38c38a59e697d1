// A small canvas line chart: training loss (left axis, logarithmic: it falls
// by orders of magnitude), running training accuracy and per-epoch test
// accuracy (right axis, 0 to 1), against epochs.
// It only plots the numbers Python sends; it computes none of them.

const COLORS = { loss: "#4263eb", acc: "#e8590c", test: "#2b8a3e", grid: "#e9ecef", text: "#868e96" };
const PAD = { left: 40, right: 40, top: 12, bottom: 26 };

export class LossChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.reset(1);
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  reset(epochs) {
    this.epochs = epochs;
    this.points = []; // {x: epochs done (fractional), loss, accuracy}
    this.tests = []; // {x: epoch number, accuracy}
    this.draw();
  }

  add(point) {
    this.points.push(point);
  }

  addTest(epoch, accuracy) {
    this.tests.push({ x: epoch, accuracy });
  }

  // Size the backing store to the element's CSS size times the pixel ratio.
  fit() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(this.canvas.clientHeight * ratio));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx, w: this.canvas.clientWidth, h: this.canvas.clientHeight };
  }

  draw() {
    const { ctx, w, h } = this.fit();
    ctx.clearRect(0, 0, w, h);
    const plotW = w - PAD.left - PAD.right;
    const plotH = h - PAD.top - PAD.bottom;
    if (plotW <= 0 || plotH <= 0) return;
    const losses = this.points.map((p) => p.loss).filter((v) => Number.isFinite(v) && v > 0);
    // Whole decades, at least 0.01 to 10, so the axis rarely rescales.
    const lo = Math.min(-2, Math.floor(Math.log10(Math.min(...losses, 1))));
    const hi = Math.max(1, Math.ceil(Math.log10(Math.max(...losses, 1))));
    const X = (x) => PAD.left + (x / this.epochs) * plotW;
    const Yloss = (v) => PAD.top + plotH * (1 - (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo));
    const Yacc = (v) => PAD.top + plotH * (1 - v);

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = Yacc(i / 4);
      ctx.strokeStyle = COLORS.grid;
      line(ctx, PAD.left, y, PAD.left + plotW, y);
      ctx.fillStyle = COLORS.acc;
      ctx.textAlign = "left";
      ctx.fillText(trim(i / 4), PAD.left + plotW + 6, y);
    }
    ctx.fillStyle = COLORS.loss;
    ctx.strokeStyle = COLORS.loss;
    ctx.textAlign = "right";
    for (let d = lo; d <= hi; d++) {
      const y = Yloss(10 ** d);
      line(ctx, PAD.left - 4, y, PAD.left, y);
      ctx.fillText(trim(10 ** d), PAD.left - 7, y);
    }
    const step = Math.max(1, Math.ceil(this.epochs / 10));
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let e = 0; e <= this.epochs; e += step) {
      ctx.strokeStyle = COLORS.grid;
      line(ctx, X(e), PAD.top, X(e), PAD.top + plotH);
      const last = e + step > this.epochs;
      ctx.textAlign = last && e > 0 ? "right" : "center";
      const label = last && e > 0 ? `${e} epoch${e === 1 ? "" : "s"}` : String(e);
      ctx.fillText(label, last && e > 0 ? X(e) + 4 : X(e), PAD.top + plotH + 6);
    }

    this.series(ctx, X, Yloss, "loss", COLORS.loss);
    this.series(ctx, X, Yacc, "accuracy", COLORS.acc);
    ctx.fillStyle = COLORS.test;
    for (const t of this.tests) {
      ctx.beginPath();
      ctx.arc(X(t.x), Yacc(t.accuracy), 4, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  series(ctx, X, Y, key, color) {
    const pts = this.points.filter((p) => Number.isFinite(p[key]));
    if (!pts.length) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.75;
    ctx.lineJoin = "round";
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(X(p.x), Y(p[key])) : ctx.moveTo(X(p.x), Y(p[key]))));
    ctx.stroke();
  }
}

function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(Math.round(x0) + 0.5, Math.round(y0) + 0.5);
  ctx.lineTo(Math.round(x1) + 0.5, Math.round(y1) + 0.5);
  ctx.stroke();
}

function trim(v) {
  return String(Number(v.toPrecision(2)));
}
