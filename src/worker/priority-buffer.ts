/**
 * The controller's local buffer of claimed tasks, one queue per lambda, each a binary heap
 * ordered by priority (higher first) and then arrival (FIFO). `take` picks the highest
 * priority among the lambdas the caller may start now (ATF's per-priority local buffers).
 */
export class PriorityBuffer<T extends { lambda: string; priority: number }> {
  private readonly heaps = new Map<string, Array<{ item: T; seq: number }>>();
  private seq = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    let heap = this.heaps.get(item.lambda);
    if (!heap) {
      heap = [];
      this.heaps.set(item.lambda, heap);
    }
    heap.push({ item, seq: this.seq++ });
    siftUp(heap, heap.length - 1);
    this.count++;
  }

  /** Removes and returns the most urgent item among lambdas `canStart` allows. */
  take(canStart: (lambda: string) => boolean): T | undefined {
    let best: Array<{ item: T; seq: number }> | undefined;
    for (const [lambda, heap] of this.heaps) {
      if (heap.length === 0 || !canStart(lambda)) continue;
      if (!best || before(heap[0], best[0])) best = heap;
    }
    if (!best) return undefined;
    this.count--;
    return pop(best).item;
  }

  /** Removes and returns every item that matches. */
  removeWhere(match: (item: T) => boolean): T[] {
    const out: T[] = [];
    for (const [lambda, heap] of this.heaps) {
      const keep = heap.filter((e) => !match(e.item));
      if (keep.length === heap.length) continue;
      for (const e of heap) if (match(e.item)) out.push(e.item);
      keep.sort((a, b) => (before(a, b) ? -1 : 1));
      this.heaps.set(lambda, keep);
    }
    this.count -= out.length;
    return out;
  }

  *values(): IterableIterator<T> {
    for (const heap of this.heaps.values()) for (const e of heap) yield e.item;
  }
}

type Entry = { item: { priority: number }; seq: number };

const before = (a: Entry, b: Entry) => a.item.priority > b.item.priority || (a.item.priority === b.item.priority && a.seq < b.seq);

function siftUp(h: Entry[], i: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!before(h[i], h[p])) return;
    [h[i], h[p]] = [h[p], h[i]];
    i = p;
  }
}

function pop<E extends Entry>(h: E[]): E {
  const top = h[0];
  const last = h.pop() as E;
  if (h.length > 0) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l], h[m])) m = l;
      if (r < h.length && before(h[r], h[m])) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
  return top;
}
