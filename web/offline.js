// Registers the service worker (sw.js) that keeps the site for the next visit
// and for working offline. Without service workers (an old browser, some
// private modes, a page not served over https or localhost) the page works as
// before, downloading what it needs on each visit.

/** Register sw.js once the page is ready, so it never competes with the first load. */
export async function keepForOffline() {
  if (!("serviceWorker" in navigator)) return false;
  try {
    await navigator.serviceWorker.register(new URL("./sw.js", import.meta.url));
    return true;
  } catch (err) {
    console.info(`pycnn: this visit will not be kept for offline use (${err.message})`);
    return false;
  }
}
