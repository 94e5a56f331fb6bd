/**
 * Groups the calls made in one turn of the event loop: items added under the same key before the turn ends are
 * handed to `flush` together, once, when it ends (setImmediate). A busy process makes many calls a turn, and one
 * script call for a group costs the process and Redis far less than one per item. A group holds at most `max`
 * items; the next item starts another group of the same turn.
 *
 * `flush` owns the items from then on: it answers each (the items carry their own callbacks), and must not throw.
 * Used by the abuse guards (one call per slot) and the request counters (one call per counter).
 */
export function batchPerTurn<T>(
  flush: (items: readonly T[]) => void,
  max = Number.POSITIVE_INFINITY,
): (key: string, item: T) => void {
  const open = new Map<string, T[]>();
  return (key, item) => {
    let batch = open.get(key);
    if (batch === undefined || batch.length >= max) {
      const items: T[] = [];
      open.set(key, items);
      setImmediate(() => {
        if (open.get(key) === items) open.delete(key);
        flush(items);
      });
      batch = items;
    }
    batch.push(item);
  };
}
