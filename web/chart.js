// A small canvas chart of every training run in this tab, on one step axis:
// the loss of each step (faint) and its moving average (left axis,
// logarithmic: it falls by orders of magnitude), training and test accuracy
// after each epoch (right axis, 0 to 1). Dashed lines mark where a run began.
// It plots the series pycnn.web.chart() sends; it computes none of them.

const COLORS = {
  loss: "#4263eb", raw: "rgba(66, 99, 235, 0.28)", train: "#e8590c", test: "#2b8a3e",
  grid: "#e9ecef", run: "#adb5bd", text: "#868e96",
};
const PAD = { left: 40, right: 40, top: 14, bottom: 26 };
const EMPTY = { x: [], y: [] };

export class HistoryChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.series = null; // pycnn.web.chart()
    this.end = 0; // the step the axis reaches: the planned end of the current run
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  // `end`: the last global step the axis must show (the running run's planned end).
  update(series, end = 0) {
    this.series = series;
    this.end = Math.max(end, series.steps);
    this.draw();
  }

  // The axis reaches `end` (a run just started) before its first points arrive.
  setEnd(end) {
    this.end = end;
    this.draw();
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
    const s = this.series || {};
    const loss = s.loss || EMPTY;
    const smooth = s.loss_smoothed || EMPTY;
    const losses = loss.y.filter((v) => Number.isFinite(v) && v > 0);
    // Whole decades, at least 0.01 to 10, so the axis rarely rescales.
    const lo = Math.min(-2, Math.floor(Math.log10(Math.min(...losses, 1))));
    const hi = Math.max(1, Math.ceil(Math.log10(Math.max(...losses, 1))));
    const xMax = Math.max(this.end, 10);
    const X = (x) => PAD.left + (x / xMax) * plotW;
    const Yloss = (v) => PAD.top + plotH * (1 - (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo));
    const Yacc = (v) => PAD.top + plotH * (1 - v);

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = Yacc(i / 4);
      ctx.strokeStyle = COLORS.grid;
      line(ctx, PAD.left, y, PAD.left + plotW, y);
      ctx.fillStyle = COLORS.test;
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
    this.stepTicks(ctx, X, xMax, plotW, plotH);
    this.runMarks(ctx, X, s.runs || [], plotH);

    const starts = (s.runs || []).slice(1).map((run) => run.start);
    polyline(ctx, loss, X, Yloss, COLORS.raw, 1, starts);
    polyline(ctx, smooth, X, Yloss, COLORS.loss, 2, starts);
    for (const [key, color] of [["train_accuracy", COLORS.train], ["test_accuracy", COLORS.test]]) {
      const series = s[key] || EMPTY;
      polyline(ctx, series, X, Yacc, color, 1.5, starts);
      ctx.fillStyle = color;
      series.x.forEach((x, i) => {
        ctx.beginPath();
        ctx.arc(X(x), Yacc(series.y[i]), 3.5, 0, 2 * Math.PI);
        ctx.fill();
      });
    }
  }

  // Gridlines at round step counts (1, 2 or 5 times a power of ten), about 6 of them.
  stepTicks(ctx, X, xMax, plotW, plotH) {
    const rough = xMax / Math.max(2, Math.min(6, Math.floor(plotW / 70)));
    const power = 10 ** Math.floor(Math.log10(rough));
    const every = [1, 2, 5, 10].map((m) => m * power).find((v) => v >= rough);
    ctx.textBaseline = "top";
    ctx.fillStyle = COLORS.text;
    for (let x = 0; x <= xMax; x += every) {
      ctx.strokeStyle = COLORS.grid;
      line(ctx, X(x), PAD.top, X(x), PAD.top + plotH);
      ctx.textAlign = x === 0 ? "left" : "center";
      ctx.fillText(x.toLocaleString("en-US"), X(x), PAD.top + plotH + 6);
    }
    ctx.textAlign = "right";
    ctx.fillText("steps", PAD.left + plotW, PAD.top + plotH + 6);
  }

  runMarks(ctx, X, runs, plotH) {
    ctx.save();
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = COLORS.run;
    ctx.fillStyle = COLORS.text;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    runs.forEach((run, i) => {
      if (i === 0) return;
      line(ctx, X(run.start), PAD.top, X(run.start), PAD.top + plotH);
      ctx.fillText(`run ${i + 1}`, X(run.start) + 4, PAD.top + 2);
    });
    ctx.restore();
  }
}

// A line through the series' points, lifted wherever a run starts between two of them
// (`starts`: the steps where runs after the first begin), so runs never join up.
function polyline(ctx, series, X, Y, color, width, starts) {
  if (!series.x.length) return;
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.lineJoin = "round";
  ctx.beginPath();
  series.x.forEach((x, i) => {
    const prev = series.x[i - 1];
    const newRun = i > 0 && starts.some((start) => prev <= start && start < x);
    if (i === 0 || newRun) ctx.moveTo(X(x), Y(series.y[i]));
    else ctx.lineTo(X(x), Y(series.y[i]));
  });
  ctx.stroke();
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
