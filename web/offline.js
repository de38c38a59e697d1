// Registers the service worker (sw.js) that keeps the site for the next visit
// and for working offline. Without service workers (an old browser, some
// private modes, a page not served over https or localhost) the page works as
// before, downloading what it needs on each visit.

const supported = "serviceWorker" in navigator;
let onUpdate = null;
let updated = false;

// A newer build took over while this page runs (its worker installs as soon as
// the browser sees the new sw.js, often while the page is still loading). This
// page keeps what it has loaded; whatever it loads from now on is the new build's.
// On a first visit the worker takes over an uncontrolled page: that is no update.
if (supported && navigator.serviceWorker.controller) {
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    updated = true;
    onUpdate?.();
  });
}

/**
 * Register sw.js; call it once the page is ready, so it never competes with the first load.
 * update() is called (at once if it already happened) when a newer build of the site
 * takes over: a reload then runs it.
 */
export async function keepForOffline(update = () => {}) {
  if (!supported) return false;
  onUpdate = update;
  if (updated) update();
  try {
    await navigator.serviceWorker.register(new URL("./sw.js", import.meta.url));
    return true;
  } catch (err) {
    console.info(`pycnn: this visit will not be kept for offline use (${err.message})`);
    return false;
  }
}
