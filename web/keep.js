// What this browser keeps across reloads, in IndexedDB (database "pycnn",
// store "models", through idb-keyval): under "last" the .npz bytes of the last
// model that is not the pretrained one, and under "checkpoint" the model of a
// running training run after its last finished epoch ({bytes, name, epoch,
// epochs, test_accuracy}: pycnn.web.checkpoint()), so a reload keeps that progress.
//
// Keeping is a convenience: a browser without storage (private mode, full
// disk) still works, it only forgets the model on reload. So every function
// here warns on the console instead of failing.

import { createStore, del, get, set } from "./vendor/idb-keyval.js";

const store = createStore("pycnn", "models");
const LAST_MODEL = "last";
const CHECKPOINT = "checkpoint";

async function quietly(what, action, fallback = null) {
  try {
    return await action();
  } catch (err) {
    console.warn(`pycnn: could not ${what} in IndexedDB:`, err);
    return fallback;
  }
}

/** Keep `bytes` (a model's .npz) as the model to restore; true if it was kept. */
export const keepModel = (bytes) => quietly("keep the model", () => set(LAST_MODEL, bytes, store).then(() => true), false);
export const forgetModel = () => quietly("forget the model", () => del(LAST_MODEL, store));
export const keptModel = () => quietly("read the model", async () => (await get(LAST_MODEL, store)) ?? null);

export const keepCheckpoint = (checkpoint) => quietly("keep the training run's progress", () => set(CHECKPOINT, checkpoint, store));
export const dropCheckpoint = () => quietly("clear the training run's progress", () => del(CHECKPOINT, store));
export const keptCheckpoint = () => quietly("read the training run's progress", async () => (await get(CHECKPOINT, store)) ?? null);
