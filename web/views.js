// Drawing what pycnn.insight computes: image blocks as tiles, the evaluation
// report, the training sample. Every number shown here arrives from Python;
// this file only places pixels and text.
//
// An image block is {count, height, width, format: "rgba", pixels: Uint8Array}:
// image k is the k-th run of height * width * 4 bytes, ready for ImageData.

export function blockImage(block, k) {
  const size = block.height * block.width * 4;
  const bytes = new Uint8ClampedArray(block.pixels.buffer, block.pixels.byteOffset + k * size, size);
  return new ImageData(bytes, block.width, block.height);
}

// Fill `box` with one tile per image of `block`; reuses the tiles it has when
// the shapes match, so a refresh (live filters, new maps) never moves the layout.
export function drawTiles(box, block, captions = null, titles = null) {
  const tiles = box.querySelectorAll(":scope > .tile");
  const reuse = tiles.length === block.count && [...tiles].every(
    (t) => t.firstChild.width === block.width && t.firstChild.height === block.height);
  if (!reuse) {
    box.replaceChildren(...Array.from({ length: block.count }, () => {
      const tile = document.createElement("figure");
      tile.className = "tile";
      const canvas = document.createElement("canvas");
      canvas.width = block.width;
      canvas.height = block.height;
      tile.append(canvas);
      if (captions) tile.append(document.createElement("figcaption"));
      return tile;
    }));
  }
  box.querySelectorAll(":scope > .tile").forEach((tile, k) => {
    tile.firstChild.getContext("2d").putImageData(blockImage(block, k), 0, 0);
    if (captions) tile.querySelector("figcaption").textContent = captions[k];
    if (titles) tile.title = titles[k];
  });
}

// Blank every tile in `box` (the drawing was cleared) without removing them.
export function blankTiles(box) {
  for (const canvas of box.querySelectorAll(":scope > .tile > canvas")) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
}

const percent = (p) => (p == null ? "–" : `${(100 * p).toFixed(1)}%`);

// One row per feature-map layer: "conv1 → relu1 · 8 maps 28×28" and its tiles.
export function drawMaps(box, maps) {
  const rows = box.querySelectorAll(":scope > .map-row");
  const same = rows.length === maps.length;
  if (!same) {
    box.replaceChildren(...maps.map(() => {
      const row = document.createElement("div");
      row.className = "map-row";
      row.innerHTML = `<p class="map-name"></p><div class="tiles maps"></div>`;
      return row;
    }));
  }
  box.querySelectorAll(":scope > .map-row").forEach((row, i) => {
    const m = maps[i];
    row.querySelector(".map-name").textContent = `${m.layer} → ${m.activation} · ${m.count} maps ${m.height}×${m.width}`;
    const tiles = row.querySelector(".tiles");
    tiles.classList.toggle("small", m.height <= 12);
    drawTiles(tiles, m, null, m.max.map((v, k) => `map ${k + 1}: strongest activation ${v.toPrecision(3)}`));
  });
}

export function drawPerClass(list, report) {
  if (!list.children.length) {
    for (let d = 0; d < 10; d++) {
      const li = document.createElement("li");
      li.innerHTML = `<span class="digit">${d}</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
      list.append(li);
    }
  }
  [...list.children].forEach((li, d) => {
    const acc = report ? report.per_class_accuracy[d] : null;
    li.querySelector(".fill").style.transform = `scaleX(${acc ?? 0})`;
    li.querySelector(".pct").textContent = report ? percent(acc) : "";
    li.title = report ? `digit ${d}: ${report.class_counts[d]} test images, ${percent(acc)} right` : "";
  });
}

// The 10x10 matrix as a table of buttons; onPick(label, predicted) on click.
export function drawConfusion(table, report, onPick) {
  if (!table.rows.length) {
    const head = table.createTHead().insertRow();
    head.append(document.createElement("th"));
    for (let p = 0; p < 10; p++) head.append(Object.assign(document.createElement("th"), { textContent: p, scope: "col" }));
    const body = table.createTBody();
    for (let t = 0; t < 10; t++) {
      const row = body.insertRow();
      row.append(Object.assign(document.createElement("th"), { textContent: t, scope: "row" }));
      for (let p = 0; p < 10; p++) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.label = t;
        button.dataset.predicted = p;
        button.addEventListener("click", () => onPick(t, p, button));
        row.insertCell().append(button);
      }
    }
  }
  for (const button of table.querySelectorAll("tbody button")) {
    const t = Number(button.dataset.label);
    const p = Number(button.dataset.predicted);
    const count = report ? report.confusion[t][p] : null;
    const share = report ? report.confusion_share[t][p] : 0;
    button.textContent = count ? count.toLocaleString("en-US") : report ? "·" : "";
    button.disabled = !count;
    // Colour scale: right answers green by their share of the row; mistakes
    // red, stretched (a few percent of a row is already a lot of mistakes).
    const tint = t === p ? `rgba(43, 138, 62, ${0.12 + 0.6 * share})` : `rgba(201, 42, 42, ${count ? Math.min(0.7, 0.08 + 6 * share) : 0})`;
    button.style.background = tint;
    button.classList.toggle("strong", t === p ? share > 0.6 : share > 0.05);
    button.title = report ? `true ${t}, predicted ${p}: ${count} image${count === 1 ? "" : "s"} (${percent(share)} of the ${t}s)` : "";
  }
}

export function selectCell(table, button) {
  for (const b of table.querySelectorAll("button.selected")) b.classList.remove("selected");
  button?.classList.add("selected");
}
