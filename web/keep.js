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
const keptModel = () => quietly("read the model", async () => (await get(LAST_MODEL, store)) ?? null);

export const keepCheckpoint = (checkpoint) => quietly("keep the training run's progress", () => set(CHECKPOINT, checkpoint, store));
export const dropCheckpoint = () => quietly("clear the training run's progress", () => del(CHECKPOINT, store));
const keptCheckpoint = () => quietly("read the training run's progress", async () => (await get(CHECKPOINT, store)) ?? null);

// A run that a reload interrupted: its last epoch's model made active and kept.
async function restoreCheckpoint(call) {
  const checkpoint = await keptCheckpoint();
  if (!checkpoint) return null;
  await dropCheckpoint();
  try {
    const reply = call("load_model_file", checkpoint.bytes, "saved");
    await keepModel(checkpoint.bytes);
    const { name, epoch, epochs } = checkpoint;
    return { ...reply, resumed: { name, epoch, epochs } };
  } catch (err) {
    console.warn(`pycnn: the interrupted run's model was dropped: ${err.message}`);
    return null;
  }
}

async function restoreSavedModel(call) {
  const bytes = await keptModel();
  if (!bytes) return null;
  try {
    return { ...call("load_model_file", bytes, "saved"), restored: true };
  } catch (err) {
    console.warn(`pycnn: the saved model was dropped: ${err.message}`);
    await forgetModel();
    return null;
  }
}

/**
 * Make the kept model the one used for drawing, through call (pycnn.web, see
 * web/runtime.js): an interrupted run's checkpoint first, else the last model.
 * Returns load_model_file's reply with `resumed` ({name, epoch, epochs}) or
 * `restored: true`, or null (nothing kept, or it no longer loads: then it is dropped).
 */
export async function restore(call) {
  return (await restoreCheckpoint(call)) || (await restoreSavedModel(call));
}
