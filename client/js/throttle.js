// At most one call per `interval` ms, the last arguments winning (a trailing call is never lost).

export function throttle(fn, interval, { now = () => Date.now(), schedule = setTimeout, cancel = clearTimeout } = {}) {
  let last = -Infinity;
  let timer = null;
  let pendingArgs = null;
  const fire = () => {
    timer = null;
    last = now();
    const args = pendingArgs;
    pendingArgs = null;
    fn(...args);
  };
  const throttled = (...args) => {
    pendingArgs = args;
    const wait = last + interval - now();
    if (wait <= 0 && timer === null) fire();
    else if (timer === null) timer = schedule(fire, Math.max(0, wait));
  };
  throttled.flush = () => {
    if (timer !== null) {
      cancel(timer);
      fire();
    }
  };
  throttled.cancel = () => {
    if (timer !== null) cancel(timer);
    timer = null;
    pendingArgs = null;
  };
  return throttled;
}

export function debounce(fn, wait, { schedule = setTimeout, cancel = clearTimeout } = {}) {
  let timer = null;
  const debounced = (...args) => {
    if (timer !== null) cancel(timer);
    timer = schedule(() => {
      timer = null;
      fn(...args);
    }, wait);
  };
  debounced.cancel = () => {
    if (timer !== null) cancel(timer);
    timer = null;
  };
  return debounced;
}
