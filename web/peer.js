// The page's one client for its workers (the page's own and the extra ones of
// data-parallel training): a module worker running web/worker.js, called
// through Comlink. A Comlink call to a worker that died never settles, so
// every call here also fails when the worker does (or after an optional
// timeout), with the reason.

import * as Comlink from "./vendor/comlink.mjs";

export const { proxy, transfer } = Comlink;

export class Peer {
  // name shows in the browser's devtools ("pycnn worker 1" is the page's own).
  constructor(url, name) {
    this.worker = new Worker(url, { type: "module", name });
    this.remote = Comlink.wrap(this.worker);
    this.dead = null;
    this.died = new Promise((_, reject) => (this.kill = reject));
    this.died.catch(() => {});
    this.worker.addEventListener("error", (event) => {
      event.preventDefault();
      // A worker whose script could not load reports an error without a message.
      this.fail(Object.assign(new Error(event.message || "the worker stopped"), { unexplained: !event.message }));
    });
    this.worker.addEventListener("messageerror", () => this.fail(new Error("a message from the worker could not be read")));
  }

  // remote[method](...args), rejecting when the worker dies first.
  call(method, ...args) {
    return this.timed(0, method, ...args);
  }

  // The same, failing the worker when no reply came within `ms` (0: no limit).
  timed(ms, method, ...args) {
    if (this.dead) return Promise.reject(this.dead);
    const racers = [this.remote[method](...args), this.died];
    let timer = null;
    if (ms) racers.push(new Promise((_, reject) => (timer = setTimeout(() => {
      this.fail(new Error(`no reply within ${ms / 1000} s`));
      reject(this.dead);
    }, ms))));
    return Promise.race(racers).finally(() => clearTimeout(timer));
  }

  fail(error) {
    if (this.dead) return;
    this.dead = error;
    this.kill(error);
    this.onDeath?.(error);
  }

  terminate() {
    this.worker.terminate();
    this.fail(new Error("the worker was closed"));
  }
}
