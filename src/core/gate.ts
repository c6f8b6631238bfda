/**
 * Gating (ATF): a lambda, or one collection inside it, can be paused (its due tasks wait) or
 * dropped (its due tasks are cancelled). A gate on the whole lambda uses collection `*`.
 */
export type GateMode = 'open' | 'pause' | 'drop';

export const WHOLE_LAMBDA = '*';

export interface Gate {
  lambda: string;
  collection: string;
  mode: GateMode;
}

/** Answers the gate in force for a task: its collection's gate, else its lambda's. */
export type GateLookup = (lambda: string, collection: string | null) => GateMode;

export const openGates: GateLookup = () => 'open';

export function gateLookupOf(gates: Iterable<Gate>): GateLookup {
  const byKey = new Map<string, GateMode>();
  for (const g of gates) if (g.mode !== 'open') byKey.set(`${g.lambda}\u0000${g.collection}`, g.mode);
  if (byKey.size === 0) return openGates;
  return (lambda, collection) =>
    (collection !== null ? byKey.get(`${lambda}\u0000${collection}`) : undefined) ?? byKey.get(`${lambda}\u0000${WHOLE_LAMBDA}`) ?? 'open';
}
