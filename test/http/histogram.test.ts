import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BatchHistogram } from '../../src/http/histogram.js';

const BOUNDS = [0.001, 0.01, 0.1, 1, 10];

/** The same observations through prom-client's Histogram and through BatchHistogram. */
function both(observations: Array<[string, number]>) {
  const theirs = new Registry();
  const h = new Histogram({ name: 'x_seconds', help: 'help text', labelNames: ['lambda'], buckets: BOUNDS, registers: [theirs] });
  const ours = new Registry();
  const b = new BatchHistogram('x_seconds', 'help text', 'lambda', BOUNDS, ours);
  for (const [lambda, v] of observations) {
    h.labels(lambda).observe(v);
    b.child(lambda).observe(v);
  }
  return { theirs, ours, b };
}

describe('BatchHistogram', () => {
  // Values on each bound (a bucket is "less than or equal"), between them, past the last one,
  // zero, and two label values interleaved.
  const observations: Array<[string, number]> = [
    ['a', 0],
    ['a', 0.001],
    ['b', 0.0011],
    ['a', 0.01],
    ['a', 0.5],
    ['b', 1],
    ['b', 10],
    ['a', 11],
    ['b', 1e6],
    ['a', 0.0999],
  ];

  it('renders the exposition prom-client renders for the same observations', async () => {
    const { theirs, ours } = both(observations);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_seconds_bucket{le="0.001",lambda="a"} 2');
    expect(text).toContain('x_seconds_bucket{le="+Inf",lambda="b"} 4');
    expect(text).toContain('x_seconds_count{lambda="a"} 6');
  });

  it('gives the JSON prom-client gives, and nothing after a reset', async () => {
    const { theirs, ours, b } = both(observations);
    // prom-client adds an empty exemplar (null) to each bucket; exemplars are not kept here.
    const withoutExemplars = (await theirs.getMetricsAsJSON()).map((m) => ({
      ...m,
      values: m.values.map(({ exemplar: _, ...v }: { exemplar?: unknown }) => v),
    }));
    expect(await ours.getMetricsAsJSON()).toEqual(withoutExemplars);
    b.reset();
    expect(await ours.metrics()).toBe('# HELP x_seconds help text\n# TYPE x_seconds histogram\n');
  });
});
