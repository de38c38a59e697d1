// Data-parallel training, the page's side: extra workers started ahead of
// time, and a run set up over them and the page's own ("first") worker.
//
// For a run of K workers the page links every pair of workers with a
// MessageChannel (web/mesh.js), the first worker hands every other one its
// shard of the training set and its starting weights, and then each worker
// steps on its own (trainShard). The page is not on a step's path: it passes
// Stop to the first worker and watches for workers that fail. If an extra
// worker fails to start, dies or falls silent, the first one goes on alone on
// the same batch schedule (pycnn.web.go_solo), and the page is told so.

import { meshPorts, SILENCE_TIMEOUT_MS } from "./mesh.js";
import { Peer, proxy, transfer } from "./peer.js";

const START_TIMEOUT_MS = 90_000; // an extra worker whose Python has not started by then counts as failed

export class WorkerPool {
  // first: the Peer of the page's own worker; url: worker.js.
  constructor(first, url) {
    this.first = first;
    this.url = url;
    this.extras = []; // {peer, ready: Promise<Peer>}
    this.run = null; // the run in progress over extra workers: {peers, hooks, solo}
  }

  // Keep `count` extra workers started (each loads Pyodide: about 4 s, and over 100 MB).
  resize(count) {
    while (this.extras.length > count) this.extras.pop().peer.terminate();
    while (this.extras.length < count) {
      const peer = new Peer(this.url, `pycnn worker ${this.extras.length + 2}`);
      const ready = peer.timed(START_TIMEOUT_MS, "initReplica").then(() => peer);
      ready.catch(() => {}); // reported when a run needs it
      this.extras.push({ peer, ready });
    }
  }

  drop(peer) {
    peer.terminate();
    this.extras = this.extras.filter((e) => e.peer !== peer);
  }

  /**
   * Train with the first worker and every extra one that started. hooks:
   * note(text) for fallbacks; onStart(reply) and onProgress(report) as the
   * first worker sends them; cancelled() says whether Stop was pressed before
   * the run began. Resolves to the first worker's last reply, or null if no run began.
   */
  async train(config, hooks) {
    const notes = [];
    const peers = [];
    for (const [i, extra] of [...this.extras].entries()) {
      try {
        const peer = await extra.ready;
        if (peer.dead) throw peer.dead; // it stopped while the page was idle
        peers.push(peer);
      } catch (err) {
        notes.push(`worker ${i + 2} could not start (${err.message})`);
        this.drop(extra.peer);
      }
    }
    if (notes.length) hooks.note(`${notes.join("; ")}: training with ${peers.length + 1} worker${peers.length ? "s" : ""}.`);
    if (hooks.cancelled()) return null;
    if (!peers.length) return this.first.call("train", config, proxy(hooks.onStart), proxy(hooks.onProgress));
    this.run = { peers, hooks, solo: false };
    let ended = false;
    try {
      const reply = await this.runWith(config, peers);
      ended = reply.done; // ended by itself or by Stop: on every worker at the same step
      return reply;
    } finally {
      for (const peer of this.run.peers) if (!peer.dead && !ended) peer.call("parStop").catch(() => {});
      this.run = null;
    }
  }

  async runWith(config, peers) {
    const shards = peers.length + 1;
    const links = meshPorts(shards);
    const ports = (k) => transfer(links[k], links[k].filter(Boolean));
    const { hooks } = this.run;
    await this.first.call("parStart", config, shards, ports(0), proxy(hooks.onStart));
    let running = false;
    try {
      const params = await this.first.call("params");
      for (const [i, peer] of peers.entries()) {
        const data = await this.first.call("shardData", i + 1);
        const mine = params.slice();
        try {
          await peer.timed(SILENCE_TIMEOUT_MS, "replicaStart", { ...config, shards }, transfer(data.images, [data.images.buffer]),
            transfer(data.labels, [data.labels.buffer]), data.shape, i + 1, transfer(mine, [mine.buffer]), ports(i + 1));
        } catch (err) {
          this.lost(peer, err);
          break;
        }
      }
      if (!this.run.solo) for (const peer of peers) peer.call("replicaRun").catch((err) => this.lost(peer, err));
      running = true;
      const reply = await this.first.call("parRun", proxy(hooks.onProgress), proxy((reason) => this.wentSolo(reason)));
      if (reply.solo) this.wentSolo(reply.solo); // if its message has not come yet
      return reply;
    } finally {
      if (!running) this.first.call("parAbort").catch(() => {}); // the set-up failed: end the first worker's run too
    }
  }

  // An extra worker failed (it died, or its Python raised) during a run: close
  // it, end the others' runs, and let the first worker finish alone.
  lost(peer, err) {
    const run = this.run;
    if (!run || !run.peers.includes(peer)) return;
    if (run.solo) {
      this.drop(peer);
      return;
    }
    this.first.call("parSolo", err.message).catch(() => {});
    this.wentSolo(err.message, [peer]);
  }

  // The first worker goes on alone: told by lost(), or on its own when the
  // others fell silent (then every other worker of the run is closed).
  wentSolo(reason, failed = this.run ? this.run.peers : []) {
    const run = this.run;
    if (!run || run.solo) return;
    run.solo = true;
    for (const peer of run.peers) {
      if (failed.includes(peer)) this.drop(peer);
      else peer.call("parStop").catch(() => {});
    }
    run.hooks.note(`A worker stopped (${reason}); training goes on in 1 worker, on the same batches.`);
  }
}
